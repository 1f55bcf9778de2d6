package esdbserver

import (
	"container/list"
	"sync"
)

// headCache is a bounded LRU cache of stream heads. Only the writer
// goroutine inserts, so a cached head is never older than the stored one.
type headCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[string]*list.Element
	// evictMark is the newest committed position at the last eviction: a
	// head read from storage after that position was published is current
	// unless the stream is cached.
	evictMark uint64
}

type cacheEntry struct {
	stream string
	h      head
}

func newHeadCache(max int) *headCache {
	return &headCache{max: max, ll: list.New(), items: make(map[string]*list.Element)}
}

func (c *headCache) get(stream string) (head, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[stream]
	if !ok {
		return head{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).h, true
}

// put caches h; mark is the newest committed position (see evictMark).
func (c *headCache) put(stream string, h head, mark uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[stream]; ok {
		e.Value.(*cacheEntry).h = h
		c.ll.MoveToFront(e)
		return
	}
	c.items[stream] = c.ll.PushFront(&cacheEntry{stream: stream, h: h})
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		c.evictMark = mark
		delete(c.items, last.Value.(*cacheEntry).stream)
	}
}

func (c *headCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// mark returns evictMark.
func (c *headCache) mark() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evictMark
}
