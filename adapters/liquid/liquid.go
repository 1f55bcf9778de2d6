// Package liquid checks and renders the Liquid templates of email subjects
// and bodies (SPEC §2.4) with github.com/osteele/liquid.
//
// Validation of an automation passes [Engine.Check] to automation.Validate;
// the run decider (domain/run) takes [Engine.Render] as its RenderFunc, with
// the scope run.Scope builds (contact, event, event_meta). Parsed templates
// are kept in a bounded LRU cache keyed by source, so a hot automation's
// templates are parsed once.
//
// Behaviour worth knowing:
//   - Undefined variables render as empty (so `default` works); an undefined
//     filter is an error at Check time, not only when the filter is reached.
//   - json.Number values in the scope are turned into int64 or float64 so
//     that `{% if event.total > 50 %}` compares numbers.
//   - Output is limited to MaxOutputBytes; a template producing more fails
//     with ErrOutputTooLarge. (CPU time is not limited: templates are
//     written by the workspace's own authenticated users.)
//
// An Engine is safe for concurrent use.
package liquid

import (
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	osteele "github.com/osteele/liquid"
	"github.com/osteele/liquid/expressions"
)

// Defaults for [New].
const (
	DefaultCacheSize      = 1024
	DefaultMaxOutputBytes = 1 << 20
)

// ErrOutputTooLarge is returned by Render when the output passes the limit.
var ErrOutputTooLarge = errors.New("template output too large")

// ErrUndefinedFilter is wrapped by Check and Render for a filter Liquid does not know.
var ErrUndefinedFilter = errors.New("undefined filter")

// Config configures an Engine. Zero values take the defaults.
type Config struct {
	// CacheSize is how many parsed templates are kept (LRU).
	CacheSize int
	// MaxOutputBytes bounds one rendering's output.
	MaxOutputBytes int
}

// Engine checks and renders templates. Create it with [New].
type Engine struct {
	eng       *osteele.Engine
	maxOutput int

	mu       sync.Mutex
	capacity int
	lru      *list.List // of *entry, most recent first
	byKey    map[string]*list.Element
	filters  map[string]bool // filter name → known, learned by probing
}

type entry struct {
	src string
	tpl *osteele.Template
}

// New returns an Engine with Liquid's standard tags and filters.
func New(cfg Config) *Engine {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = DefaultMaxOutputBytes
	}
	return &Engine{
		eng:       osteele.NewEngine(),
		maxOutput: cfg.MaxOutputBytes,
		capacity:  cfg.CacheSize,
		lru:       list.New(),
		byKey:     map[string]*list.Element{},
		filters:   map[string]bool{},
	}
}

// Check reports why src is not a valid template: a syntax error, an unknown
// tag, an unterminated block, or a filter Liquid does not define.
func (e *Engine) Check(src string) error {
	_, err := e.parse(src)
	return err
}

// Render renders src with scope (contact, event, event_meta). Rendering the
// same source and scope always gives the same output.
func (e *Engine) Render(src string, scope map[string]any) (string, error) {
	tpl, err := e.parse(src)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	w := &limitWriter{w: &b, left: e.maxOutput}
	vars, _ := normalize(scope).(map[string]any)
	if err := safeRender(tpl, w, vars); err != nil {
		if w.over {
			return "", fmt.Errorf("render: more than %d bytes: %w", e.maxOutput, ErrOutputTooLarge)
		}
		return "", fmt.Errorf("render: %w", wrapUndefined(err))
	}
	return b.String(), nil
}

// safeRender turns osteele/liquid's panics (it panics on some writer errors
// inside blocks, and on errors raised by filters) into errors, so a bad
// template can fail one run but never the process.
func safeRender(tpl *osteele.Template, w io.Writer, vars map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if rerr, ok := r.(error); ok {
				err = fmt.Errorf("template panicked: %w", rerr)
				return
			}
			err = fmt.Errorf("template panicked: %v", r)
		}
	}()
	if rerr := tpl.FRender(w, vars); rerr != nil {
		return rerr
	}
	return nil
}

func (e *Engine) parse(src string) (*osteele.Template, error) {
	e.mu.Lock()
	if el, ok := e.byKey[src]; ok {
		e.lru.MoveToFront(el)
		tpl := el.Value.(*entry).tpl
		e.mu.Unlock()
		return tpl, nil
	}
	e.mu.Unlock()

	tpl, perr := e.eng.ParseString(src)
	if perr != nil {
		return nil, fmt.Errorf("parse: %w", perr)
	}
	for _, name := range filterNames(src) {
		if !e.knownFilter(name) {
			return nil, fmt.Errorf("parse: %q: %w", name, ErrUndefinedFilter)
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if el, ok := e.byKey[src]; ok { // parsed concurrently
		e.lru.MoveToFront(el)
		return el.Value.(*entry).tpl, nil
	}
	e.byKey[src] = e.lru.PushFront(&entry{src: src, tpl: tpl})
	for e.lru.Len() > e.capacity {
		old := e.lru.Back()
		e.lru.Remove(old)
		delete(e.byKey, old.Value.(*entry).src)
	}
	return tpl, nil
}

// knownFilter asks Liquid itself whether a filter exists, by rendering a
// probe that applies it (osteele/liquid only reports undefined filters when
// it reaches them while rendering). Answers are remembered; the set of names
// is bounded by the cache size to keep memory bounded.
func (e *Engine) knownFilter(name string) bool {
	e.mu.Lock()
	known, ok := e.filters[name]
	e.mu.Unlock()
	if ok {
		return known
	}
	_, err := e.eng.ParseAndRenderString("{{ nil | "+name+" }}", nil)
	var undefined expressions.UndefinedFilter
	known = !errors.As(err, &undefined) && !strings.Contains(fmt.Sprint(err), "undefined filter")
	e.mu.Lock()
	if len(e.filters) < e.capacity {
		e.filters[name] = known
	}
	e.mu.Unlock()
	return known
}

func wrapUndefined(err error) error {
	var undefined expressions.UndefinedFilter
	if errors.As(err, &undefined) || strings.Contains(err.Error(), "undefined filter") {
		return fmt.Errorf("%v: %w", err, ErrUndefinedFilter)
	}
	return err
}

// filterNames lists the filters a template applies: identifiers after a `|`
// inside {{ }} or {% %}, with quoted strings skipped. Sorted, unique.
func filterNames(src string) []string {
	seen := map[string]bool{}
	for {
		i := indexTagOpen(src)
		if i < 0 {
			break
		}
		closer := "}}"
		if src[i+1] == '%' {
			closer = "%}"
		}
		src = src[i+2:]
		end := strings.Index(src, closer)
		inner := src
		if end >= 0 {
			inner = src[:end]
			src = src[end+2:]
		} else {
			src = ""
		}
		for _, name := range filtersIn(inner) {
			seen[name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func indexTagOpen(s string) int {
	a, b := strings.Index(s, "{{"), strings.Index(s, "{%")
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}

// filtersIn scans one tag's inside for `| name`, skipping quoted strings.
func filtersIn(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return out
			}
			i += j + 1
		case '|':
			j := i + 1
			for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r') {
				j++
			}
			k := j
			for k < len(s) && (s[k] == '_' || s[k] == '-' || (s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') || (k > j && s[k] >= '0' && s[k] <= '9')) {
				k++
			}
			if k > j {
				out = append(out, s[j:k])
			}
			i = k - 1
		}
	}
	return out
}

// normalize copies maps and slices, turning json.Number into int64 (when
// whole and in range) or float64, so Liquid compares numbers as numbers.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = normalize(e)
		}
		return s
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return string(x)
	}
	return v
}

type limitWriter struct {
	w    io.Writer
	left int
	over bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.left {
		l.over = true
		return 0, ErrOutputTooLarge
	}
	l.left -= len(p)
	return l.w.Write(p)
}
