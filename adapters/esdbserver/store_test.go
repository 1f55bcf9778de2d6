package esdbserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newClient(t *testing.T, url string) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func start(t *testing.T, dir string, reg prometheus.Registerer) *Server {
	t.Helper()
	s, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dir, Registerer: reg})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func histogram(t *testing.T, reg *prometheus.Registry, name string) *dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("metric %s not found", name)
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Requests queued while the writer is busy are checked one by one and
// committed together with one fsync.
func TestWriterGroupsQueuedRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newStore(t.TempDir(), discard(), met)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	reqs := make([]*writeReq, n)
	for i := range reqs {
		exp := expected{kind: expAny}
		if i == n-1 {
			exp = expected{kind: expRev, rev: 100} // wrong expected version
		}
		reqs[i] = &writeReq{op: opAppend, stream: "s", exp: exp, done: make(chan writeResult, 1),
			events: []proposed{{id: uuid.New(), typ: "t", data: []byte("x")}}}
		s.reqs <- reqs[i] // queued before the writer runs
	}
	go s.writer()
	for i, r := range reqs {
		res := <-r.done
		if i < n-1 {
			if res.kind != resOK || res.cur != int64(i) || res.pos != uint64(i+1) {
				t.Errorf("request %d: %+v, want ok rev %d pos %d", i, res, i, i+1)
			}
		} else if res.kind != resWEV || res.cur != n-2 {
			t.Errorf("last request: %+v, want WEV with current %d", res, n-2)
		}
	}
	h := histogram(t, reg, "lark_esdb_group_commit_events")
	if h.GetSampleCount() != 1 || h.GetSampleSum() != n-1 {
		t.Errorf("group commits: %d with %v events, want 1 with %d", h.GetSampleCount(), h.GetSampleSum(), n-1)
	}
	if got := counter(t, reg, "lark_esdb_writes_total", "wrong_expected_version"); got != 1 {
		t.Errorf("wrong_expected_version writes = %v, want 1", got)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if res := s.write(&writeReq{op: opAppend, stream: "s"}); !errors.Is(res.err, errClosed) {
		t.Errorf("write after close: %+v, want errClosed", res)
	}
}

// Idempotency by event id is exact across restarts, for every kind of
// expected revision, and the log resumes at the next position.
func TestIdempotencySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	events := func(ids ...uuid.UUID) []esdb.EventData {
		var out []esdb.EventData
		for _, id := range ids {
			out = append(out, esdb.EventData{EventID: id, EventType: "T", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)})
		}
		return out
	}
	srv, err := Start(ctx, Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv.URL())
	first, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, events(ids...)...)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	srv = start(t, dir, nil)
	c = newClient(t, srv.URL())
	for _, exp := range []esdb.ExpectedRevision{esdb.NoStream{}, esdb.Any{}, esdb.StreamExists{}} {
		res, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: exp}, events(ids...)...)
		if err != nil {
			t.Fatalf("retry with %T: %v", exp, err)
		}
		if res.NextExpectedVersion != 2 || res.CommitPosition != first.CommitPosition {
			t.Errorf("retry with %T: %+v, want revision 2 at %d", exp, res, first.CommitPosition)
		}
	}
	// A partial retry with any: the first id is known, a later one is not.
	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, events(ids[0], uuid.New())...)
	if !isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
		t.Errorf("partial any retry: %v, want wrong expected version", err)
	}
	res, err := c.AppendToStream(ctx, "other", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, events(ids[0])...)
	if err != nil {
		t.Fatal(err)
	}
	if res.NextExpectedVersion != 0 || res.CommitPosition != first.CommitPosition+1 {
		t.Errorf("same id in another stream: %+v, want revision 0 at the next position %d", res, first.CommitPosition+1)
	}
	rs, err := c.ReadStream(ctx, "s", esdb.ReadStreamOptions{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	n := 0
	for {
		_, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("stream has %d events, want 3 (no duplicates)", n)
	}
}

func isCode(err error, code esdb.ErrorCode) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == code
}

func TestStartRefusesDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	start(t, dir, nil)
	s, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err == nil {
		_ = s.Close()
		t.Fatal("second Start on the same data dir succeeded")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error does not name the data dir: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(context.Background(), Config{}); err == nil {
		t.Error("Start without DataDir succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), Config{DataDir: filepath.Join(file, "sub")}); err == nil {
		t.Error("Start under a regular file succeeded")
	}
	dir := t.TempDir()
	srv := start(t, dir, nil)
	// The port is taken: Start must fail and release the store for others.
	if s, err := Start(context.Background(), Config{Listen: srv.Addr(), DataDir: t.TempDir()}); err == nil {
		_ = s.Close()
		t.Error("Start on a busy port succeeded")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A damaged storage file is reported, never read as wrong data.
func TestCorruptionIsReported(t *testing.T) {
	dir := t.TempDir()
	s, err := openStore(dir, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat("payload ", 64))
	for i := range 200 {
		res := s.write(&writeReq{op: opAppend, stream: "s", exp: expected{kind: expAny},
			events: []proposed{{id: uuid.New(), typ: "t", data: data}}})
		if res.kind != resOK {
			t.Fatalf("append %d: %+v", i, res)
		}
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable written")
	}
	for _, f := range ssts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := 64; i < 2048 && i < len(b); i += 97 {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Logf("Start reported the damage: %v", err)
		return
	}
	t.Cleanup(func() { _ = srv.Close() })
	c := newClient(t, srv.URL())
	rs, err := c.ReadAll(context.Background(), esdb.ReadAllOptions{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for n := 0; ; n++ {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			t.Fatalf("read %d events of a damaged store without an error", n)
		}
		if err != nil {
			if !strings.Contains(err.Error(), "DataLoss") {
				t.Errorf("read failed with %v, want status DataLoss", err)
			}
			return
		}
		if string(ev.Event.Data) != string(data) {
			t.Fatalf("event %d has wrong data", n)
		}
	}
}

// Metrics are registered and move with the traffic.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := start(t, t.TempDir(), reg)
	c := newClient(t, srv.URL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ev := esdb.EventData{EventType: "T", ContentType: esdb.ContentTypeBinary, Data: []byte("abc")}
	if _, err := c.AppendToStream(ctx, "m", esdb.AppendToStreamOptions{}, ev, ev); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, reg, "lark_esdb_events_appended_total", ""); got != 2 {
		t.Errorf("events appended = %v, want 2", got)
	}
	if got := counter(t, reg, "lark_esdb_writes_total", "ok"); got != 1 {
		t.Errorf("ok writes = %v, want 1", got)
	}
	if got := counter(t, reg, "lark_esdb_bytes_written_total", ""); got <= 0 {
		t.Errorf("bytes written = %v, want > 0", got)
	}
	if h := histogram(t, reg, "lark_esdb_commit_seconds"); h.GetSampleCount() != 1 {
		t.Errorf("commit latency samples = %d, want 1", h.GetSampleCount())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mfs, _ := reg.Gather()
		var subs float64
		for _, mf := range mfs {
			if mf.GetName() == "lark_esdb_active_subscriptions" {
				subs = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if subs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("active subscriptions = %v, want 1", subs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A second server on the same registry is refused (duplicate metrics).
	if s, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Registerer: reg}); err == nil {
		_ = s.Close()
		t.Error("Start with already registered metrics succeeded")
	}
}

// Close ends live subscriptions instead of waiting for them.
func TestCloseEndsSubscriptions(t *testing.T) {
	srv, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv.URL())
	var wg sync.WaitGroup
	for range 3 {
		sub, err := c.SubscribeToAll(context.Background(), esdb.SubscribeToAllOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if ev := sub.Recv(); ev.SubscriptionDropped != nil {
					return
				}
			}
		}()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("Close did not end the subscriptions in time")
	}
	wg.Wait()
}

// A discover connection string goes through Gossip.Read to this node.
func TestDiscoverConnectionString(t *testing.T) {
	srv := start(t, t.TempDir(), nil)
	c := newClient(t, "esdb+discover://"+srv.Addr()+"?tls=false")
	ctx := context.Background()
	ev := esdb.EventData{EventType: "T", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)}
	if _, err := c.AppendToStream(ctx, "d", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, ev); err != nil {
		t.Fatalf("append through discovery: %v", err)
	}
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	info, err := gossip.NewGossipClient(conn).Read(ctx, &shared.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(srv.Addr())
	if m := info.GetMembers(); len(m) != 1 || m[0].GetState() != gossip.MemberInfo_Leader || !m[0].GetIsAlive() ||
		m[0].GetHttpEndPoint().GetAddress() != host || fmt.Sprint(m[0].GetHttpEndPoint().GetPort()) != port ||
		m[0].GetTimeStamp() <= 0 {
		t.Errorf("gossip = %v, want this node as the one alive leader", info)
	}
}

// Writes to the metastream of a tombstoned stream fail as stream-deleted.
func TestTombstonedStreamMetastream(t *testing.T) {
	srv := start(t, t.TempDir(), nil)
	c := newClient(t, srv.URL())
	ctx := context.Background()
	if _, err := c.TombstoneStream(ctx, "gone", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Any{}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.SetStreamMetadata(ctx, "gone", esdb.AppendToStreamOptions{}, esdb.StreamMetadata{})
	if !isCode(err, esdb.ErrorCodeStreamDeleted) {
		t.Errorf("metadata write: %v, want stream deleted", err)
	}
	_, err = c.GetStreamMetadata(ctx, "gone", esdb.ReadStreamOptions{})
	if !isCode(err, esdb.ErrorCodeStreamDeleted) {
		t.Errorf("metadata read: %v, want stream deleted", err)
	}
}

func TestURLOnWildcardListen(t *testing.T) {
	s, err := Start(context.Background(), Config{Listen: "0.0.0.0:0", DataDir: t.TempDir()})
	if err != nil {
		t.Skipf("cannot listen on all interfaces here: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	_, port, _ := net.SplitHostPort(s.Addr())
	if want := "esdb://127.0.0.1:" + port + "?tls=false"; s.URL() != want {
		t.Errorf("URL = %s, want %s", s.URL(), want)
	}
	c := newClient(t, s.URL())
	ev := esdb.EventData{EventType: "T", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)}
	if _, err := c.AppendToStream(context.Background(), "w", esdb.AppendToStreamOptions{}, ev); err != nil {
		t.Fatal(err)
	}
}
