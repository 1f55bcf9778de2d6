package esdbserver

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  record
	}{
		{name: "json event", rec: record{rev: 7, created: 17000000000000000, id: [16]byte{1, 2, 3}, json: true,
			stream: "order-1", typ: "OrderPlaced", data: []byte(`{"a":1}`), meta: []byte(`{"m":2}`)}},
		{name: "binary, empty payloads", rec: record{rev: 0, created: 1, id: [16]byte{15: 9},
			stream: "s", typ: "t", data: []byte{}, meta: []byte{}}},
		{name: "tombstone revision", rec: record{rev: tombstoneRev, created: -5, stream: "x\x00y", typ: "$streamDeleted",
			data: []byte{}, meta: []byte{}}},
		{name: "large data", rec: record{rev: 1 << 40, stream: "big", typ: "b",
			data: bytes.Repeat([]byte{0xab}, 1<<20), meta: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := encodeRecord(nil, &tt.rec)
			var got record
			if err := decodeRecord(enc, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(tt.rec, got, cmp.AllowUnexported(record{})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeRecordRejectsDamage(t *testing.T) {
	good := encodeRecord(nil, &record{rev: 1, stream: "s", typ: "t", data: []byte("data"), meta: []byte("m")})
	tests := []struct {
		name string
		b    []byte
	}{
		{name: "empty", b: nil},
		{name: "bad version", b: append([]byte{9}, good[1:]...)},
		{name: "truncated", b: good[:len(good)-2]},
		{name: "trailing bytes", b: append(append([]byte{}, good...), 0)},
		{name: "length past the end", b: append(append([]byte{}, good[:34]...), 0xff, 0x01)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r record
			err := decodeRecord(tt.b, &r)
			if !errors.Is(err, errCorruptRecord) {
				t.Errorf("decode = %v, want errCorruptRecord", err)
			}
		})
	}
}

func TestHeadRoundTrip(t *testing.T) {
	for _, h := range []head{
		emptyHead,
		{lastRev: 5, lastPos: 99, hasMeta: true, tb: 3, maxCount: 10, maxAge: 60},
		{lastRev: 2, lastPos: 1 << 50, tombstoned: true, deleted: true, tb: deletedTB, ids: idFilter{0: 1, 127: 0x80}},
	} {
		got, err := decodeHead(encodeHead(h))
		if err != nil {
			t.Fatalf("decode %+v: %v", h, err)
		}
		if diff := cmp.Diff(h, got, cmp.AllowUnexported(head{})); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	if _, err := decodeHead([]byte{1, 2, 3}); !errors.Is(err, errCorruptRecord) {
		t.Errorf("short head: err = %v, want errCorruptRecord", err)
	}
}

// Keys of one stream never interleave with another stream's, even when one
// name is a prefix of the other, and revisions and positions sort
// numerically.
func TestKeyLayoutOrder(t *testing.T) {
	if bytes.Compare(allKey(255), allKey(256)) >= 0 || bytes.Compare(allKey(1), allKey(1<<40)) >= 0 {
		t.Error("log keys do not sort by position")
	}
	if bytes.Compare(streamKey("s", 9), streamKey("s", 10)) >= 0 {
		t.Error("stream keys do not sort by revision")
	}
	// With length prefixes, every key of "ab" lies outside the range of "a".
	lo, hi := streamKey("a", 0), append(streamKey("a", ^uint64(0)), 0)
	for _, k := range [][]byte{streamKey("ab", 0), streamKey("a\x00", 0), streamKey("", 5)} {
		if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
			t.Errorf("key %q falls inside stream a's range", k)
		}
	}
	a, b := idKey("ab", [16]byte{}), idKey("a", [16]byte{'b'})
	if bytes.Equal(a, b) {
		t.Error("id keys of different streams collide")
	}
}

func TestHeadCacheIsBoundedLRU(t *testing.T) {
	c := newHeadCache(3)
	for i := range 10 {
		c.put(fmt.Sprint(i), head{lastRev: int64(i)}, uint64(i))
	}
	if got := c.len(); got != 3 {
		t.Fatalf("len = %d, want 3", got)
	}
	if got := c.mark(); got != 9 {
		t.Errorf("evict mark = %d, want 9", got)
	}
	if _, ok := c.get("6"); ok {
		t.Error("evicted entry still cached")
	}
	c.get("7") // 7 becomes most recent; 8 is now the oldest
	c.put("10", head{lastRev: 10}, 10)
	if _, ok := c.get("8"); ok {
		t.Error("least recently used entry not evicted")
	}
	for _, k := range []string{"7", "9", "10"} {
		if h, ok := c.get(k); !ok || fmt.Sprint(h.lastRev) != k {
			t.Errorf("get(%s) = %+v, %v", k, h, ok)
		}
	}
	c.put("9", head{lastRev: 99}, 11)
	if h, _ := c.get("9"); h.lastRev != 99 {
		t.Errorf("update not seen: %+v", h)
	}
}

func TestParseMeta(t *testing.T) {
	tests := []struct {
		in   string
		want streamMeta
	}{
		{in: `{"$maxCount":5,"$maxAge":60,"$tb":3}`, want: streamMeta{tb: 3, maxCount: 5, maxAge: 60}},
		{in: `{"$tb":9223372036854775807}`, want: streamMeta{tb: deletedTB}},
		{in: `{"custom":"x","$maxCount":"five"}`, want: streamMeta{}},
		{in: `not json`, want: streamMeta{}},
		{in: `{"$maxCount":-1,"$maxAge":1.5}`, want: streamMeta{}},
		{in: ``, want: streamMeta{}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, parseMeta([]byte(tt.in)), cmp.AllowUnexported(streamMeta{})); diff != "" {
			t.Errorf("parseMeta(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestWithTB(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: `{"$tb":9223372036854775807}`, want: `{"$tb":4}`},
		{in: `{"$maxAge":10,"x":[1]}`, want: `{"$maxAge":10,"$tb":4,"x":[1]}`},
		{in: `garbage`, want: `{"$tb":4}`},
		{in: ``, want: `{"$tb":4}`},
	}
	for _, tt := range tests {
		if got := string(withTB([]byte(tt.in), 4)); got != tt.want {
			t.Errorf("withTB(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestIDFilterHasNoFalseNegatives(t *testing.T) {
	var f idFilter
	ids := make([][16]byte, 100)
	for i := range ids {
		ids[i] = uuid.New()
		f.add(&ids[i])
	}
	for i := range ids {
		if !f.mayContain(&ids[i]) {
			t.Fatalf("id %d added but not contained", i)
		}
	}
	fp := 0
	for range 10000 {
		id := [16]byte(uuid.New())
		if f.mayContain(&id) {
			fp++
		}
	}
	// 1024 bits, 3 hashes, 100 ids: about 1.5 % false positives.
	if fp > 500 {
		t.Errorf("%d false positives in 10000, want about 150", fp)
	}
	var empty idFilter
	if empty.mayContain(&ids[0]) {
		t.Error("empty filter contains an id")
	}
}
