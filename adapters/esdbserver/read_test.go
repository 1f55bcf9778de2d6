package esdbserver

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
)

func span(from, to uint64) []uint64 {
	var out []uint64
	if from <= to {
		for p := from; p <= to; p++ {
			out = append(out, p)
		}
		return out
	}
	for p := from; p >= to && p > 0; p-- {
		out = append(out, p)
	}
	return out
}

// $all reads that cross the server's internal page boundaries return every
// event once, in order, in both directions.
func TestReadAllAcrossPages(t *testing.T) {
	srv := start(t, t.TempDir(), nil)
	c := newClient(t, srv.URL())
	ctx := context.Background()
	const total = 2400 // more than two pages
	batch := make([]esdb.EventData, 100)
	for i := range batch {
		batch[i] = esdb.EventData{EventType: "T", ContentType: esdb.ContentTypeBinary, Data: []byte{byte(i)}}
	}
	for i := 0; i < total; i += len(batch) {
		if _, err := c.AppendToStream(ctx, "p", esdb.AppendToStreamOptions{}, batch...); err != nil {
			t.Fatal(err)
		}
	}
	read := func(opts esdb.ReadAllOptions, count uint64) []uint64 {
		t.Helper()
		rs, err := c.ReadAll(ctx, opts, count)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var got []uint64
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.OriginalEvent().Position.Commit)
		}
	}
	tests := []struct {
		name  string
		opts  esdb.ReadAllOptions
		count uint64
		want  []uint64
	}{
		{"forwards all", esdb.ReadAllOptions{From: esdb.Start{}}, ^uint64(0), span(1, total)},
		{"forwards from a position, inclusive", esdb.ReadAllOptions{From: esdb.Position{Commit: 1000, Prepare: 1000}}, 1300, span(1000, 2299)},
		{"backwards all", esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, ^uint64(0), span(total, 1)},
		{"backwards from a position, exclusive", esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.Position{Commit: 2000, Prepare: 2000}}, 1100, span(1999, 900)},
		{"count ends exactly at a page", esdb.ReadAllOptions{From: esdb.Start{}}, pageSize, span(1, pageSize)},
		{"backwards from start", esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.Start{}}, 10, nil},
		{"forwards from end", esdb.ReadAllOptions{From: esdb.End{}}, 10, nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, read(tt.opts, tt.count)); diff != "" {
			t.Errorf("%s: positions (-want +got):\n%s", tt.name, diff)
		}
	}
}
