package esdbserver

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Key layout in Pebble. Stream names are length-prefixed so that no stream
// name can be a prefix of another stream's keys.
//
//	a<pos u64 BE>                    → record (every event, in $all order)
//	s<len uvarint><stream><rev BE>   → pos u64 BE (stream index)
//	h<stream>                        → head (last revision, flags, metadata)
//	i<len uvarint><stream><id 16>    → rev u64 BE (idempotency index)
const (
	prefixAll    = 'a'
	prefixStream = 's'
	prefixHead   = 'h'
	prefixID     = 'i'
)

// recordVersion is the first byte of every encoded record.
const recordVersion = 1

// errCorruptRecord reports a record or head value that cannot be decoded.
var errCorruptRecord = errors.New("esdbserver: corrupt record")

// record is one stored event. Byte slices may alias storage memory; copy
// them before keeping them past the iterator step that produced them.
type record struct {
	pos     uint64
	rev     uint64
	created int64 // .NET ticks since the Unix epoch
	id      [16]byte
	json    bool // content-type application/json
	stream  string
	typ     string
	data    []byte
	meta    []byte
	enc     rawMessage // ReadResp encoding (structured id), set for live fan-out
}

func allKey(pos uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixAll
	binary.BigEndian.PutUint64(k[1:], pos)
	return k
}

func appendStreamPrefix(dst []byte, prefix byte, stream string) []byte {
	dst = append(dst, prefix)
	dst = binary.AppendUvarint(dst, uint64(len(stream)))
	return append(dst, stream...)
}

func streamKey(stream string, rev uint64) []byte {
	k := appendStreamPrefix(make([]byte, 0, len(stream)+18), prefixStream, stream)
	return binary.BigEndian.AppendUint64(k, rev)
}

func idKey(stream string, id [16]byte) []byte {
	k := appendStreamPrefix(make([]byte, 0, len(stream)+26), prefixID, stream)
	return append(k, id[:]...)
}

func headKey(stream string) []byte {
	return append([]byte{prefixHead}, stream...)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// encodeRecord appends the binary form of r (without its position, which is
// the key) to dst.
func encodeRecord(dst []byte, r *record) []byte {
	dst = append(dst, recordVersion)
	dst = binary.BigEndian.AppendUint64(dst, r.rev)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.created))
	dst = append(dst, r.id[:]...)
	var flags byte
	if r.json {
		flags |= 1
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(r.stream)))
	dst = append(dst, r.stream...)
	dst = binary.AppendUvarint(dst, uint64(len(r.typ)))
	dst = append(dst, r.typ...)
	dst = binary.AppendUvarint(dst, uint64(len(r.data)))
	dst = append(dst, r.data...)
	dst = binary.AppendUvarint(dst, uint64(len(r.meta)))
	dst = append(dst, r.meta...)
	return dst
}

// decodeRecord fills r from b. r.data and r.meta alias b; r.stream and r.typ
// are copied.
func decodeRecord(b []byte, r *record) error {
	if len(b) < 34 || b[0] != recordVersion {
		return fmt.Errorf("%w: bad header", errCorruptRecord)
	}
	r.rev = binary.BigEndian.Uint64(b[1:])
	r.created = int64(binary.BigEndian.Uint64(b[9:]))
	copy(r.id[:], b[17:33])
	r.json = b[33]&1 != 0
	rest := b[34:]
	var parts [4][]byte
	for i := range parts {
		n, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n {
			return fmt.Errorf("%w: bad field %d", errCorruptRecord, i)
		}
		parts[i] = rest[w : w+int(n)]
		rest = rest[w+int(n):]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: trailing bytes", errCorruptRecord)
	}
	if r.stream != string(parts[0]) {
		r.stream = string(parts[0])
	}
	if r.typ != string(parts[1]) {
		r.typ = string(parts[1])
	}
	r.data, r.meta = parts[2], parts[3]
	return nil
}

// head is the state of one stream.
type head struct {
	lastRev    int64  // -1 when the stream never had events
	lastPos    uint64 // position of the last event (or of the tombstone)
	tombstoned bool
	hasMeta    bool  // the metastream has events
	deleted    bool  // soft-deleted ($tb == MaxInt64)
	tb         int64 // $tb, 0 if unset
	maxCount   int64 // $maxCount, 0 if unset
	maxAge     int64 // $maxAge in seconds, 0 if unset
	ids        idFilter
}

// idFilter is a small Bloom filter of a stream's event ids. It has no false
// negatives, so an id it does not contain needs no index lookup; it fills up
// on long streams, which then fall back to the on-disk id index.
type idFilter [128]byte

const idFilterBits = len(idFilter{}) * 8

func idHashes(id *[16]byte) [3]uint {
	x := binary.LittleEndian.Uint64(id[:8]) ^ 0x9e3779b97f4a7c15
	y := binary.LittleEndian.Uint64(id[8:])
	h := mix64(x ^ mix64(y))
	return [3]uint{uint(h % uint64(idFilterBits)), uint((h >> 21) % uint64(idFilterBits)), uint((h >> 42) % uint64(idFilterBits))}
}

// mix64 is the splitmix64 finalizer.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (f *idFilter) add(id *[16]byte) {
	for _, b := range idHashes(id) {
		f[b/8] |= 1 << (b % 8)
	}
}

// mayContain reports false only if id was never added.
func (f *idFilter) mayContain(id *[16]byte) bool {
	for _, b := range idHashes(id) {
		if f[b/8]&(1<<(b%8)) == 0 {
			return false
		}
	}
	return true
}

var emptyHead = head{lastRev: -1}

// headSize is the length of an encoded head.
const headSize = 42 + len(idFilter{})

func encodeHead(h head) []byte {
	b := make([]byte, 0, headSize)
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(h.lastRev))
	b = binary.BigEndian.AppendUint64(b, h.lastPos)
	var flags byte
	if h.tombstoned {
		flags |= 1
	}
	if h.hasMeta {
		flags |= 2
	}
	if h.deleted {
		flags |= 4
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(h.tb))
	b = binary.BigEndian.AppendUint64(b, uint64(h.maxCount))
	b = binary.BigEndian.AppendUint64(b, uint64(h.maxAge))
	return append(b, h.ids[:]...)
}

func decodeHead(b []byte) (head, error) {
	if len(b) != headSize || b[0] != recordVersion {
		return head{}, fmt.Errorf("%w: bad stream head", errCorruptRecord)
	}
	flags := b[17]
	h := head{
		lastRev:    int64(binary.BigEndian.Uint64(b[1:])),
		lastPos:    binary.BigEndian.Uint64(b[9:]),
		tombstoned: flags&1 != 0,
		hasMeta:    flags&2 != 0,
		deleted:    flags&4 != 0,
		tb:         int64(binary.BigEndian.Uint64(b[18:])),
		maxCount:   int64(binary.BigEndian.Uint64(b[26:])),
		maxAge:     int64(binary.BigEndian.Uint64(b[34:])),
	}
	copy(h.ids[:], b[42:])
	return h, nil
}
