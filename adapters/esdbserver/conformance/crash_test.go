package conformance

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
)

// serverProcess is the embedded server running in a child process.
type serverProcess struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan struct{}
}

// startServerProcess re-executes the test binary as a server on dir.
func startServerProcess(t *testing.T, dir string) *serverProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	p := &serverProcess{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{w: p.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server process: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, listeningPrefix) {
				urls <- strings.TrimPrefix(line, listeningPrefix)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case p.url = <-urls:
		return p
	case <-p.done:
		t.Fatalf("server process exited before listening: %s", p.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("server process did not start within 60 s: %s", p.stderr)
	}
	return nil
}

// kill9 kills the server process with SIGKILL and waits for it to be gone.
func (p *serverProcess) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	<-p.done
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// attempt is one append sent during the crash test.
type attempt struct {
	stream  string
	ids     []uuid.UUID
	acked   bool
	lastRev uint64
	lastPos esdb.Position
}

// Kill -9 the server under concurrent single and batched appends, restart it
// on the same data: every acknowledged event is there at the same revision
// and $all position, in order, and no batch is partly visible.
func TestCrashKill9UnderLoad(t *testing.T) {
	if esdbtest.External() {
		t.Skip("kills the server process; needs the embedded server")
	}
	t.Parallel()
	dir := t.TempDir()
	const writers, rounds = 16, 3
	var attempts []*attempt
	var streams []string
	srv := startServerProcess(t, dir)
	for round := 0; round < rounds; round++ {
		c := esdbtest.ClientFor(t, srv.url)
		var (
			mu    sync.Mutex
			acked atomic.Int64
			wg    sync.WaitGroup
		)
		for w := 0; w < writers; w++ {
			s := fmt.Sprintf("crash-r%d-w%d-%s", round, w, uuid.NewString())
			streams = append(streams, s)
			wg.Add(1)
			go func(s string, seed uint64) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, 7))
				for {
					n := 1
					if rng.IntN(2) == 0 {
						n = 2 + rng.IntN(30)
					}
					evs := jsonEvents("Crash", n)
					a := &attempt{stream: s, ids: ids(evs)}
					mu.Lock()
					attempts = append(attempts, a)
					mu.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					res, err := c.AppendToStream(ctx, s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, evs...)
					cancel()
					if err != nil {
						return // the server is gone (or broken: the checks below will tell)
					}
					mu.Lock()
					a.acked, a.lastRev, a.lastPos = true, res.NextExpectedVersion, writePos(res)
					mu.Unlock()
					acked.Add(1)
				}
			}(s, uint64(round*100+w))
		}
		// Let the load build up, then kill in the middle of it.
		deadline := time.Now().Add(20 * time.Second)
		for acked.Load() < 100 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
		srv.kill9(t)
		wg.Wait()
		if acked.Load() == 0 {
			t.Fatalf("round %d: no append was acknowledged before the kill; server stderr:\n%s", round, srv.stderr)
		}

		srv = startServerProcess(t, dir)
		verifyAfterCrash(t, esdbtest.ClientFor(t, srv.url), round, attempts, streams)
		if t.Failed() {
			return
		}
	}
}

// verifyAfterCrash checks every attempt made so far against the restarted
// server.
func verifyAfterCrash(t *testing.T, c *esdb.Client, round int, attempts []*attempt, streams []string) {
	t.Helper()
	type stored struct {
		stream string
		rev    uint64
		pos    esdb.Position
	}
	have := map[uuid.UUID]stored{}
	for _, s := range streams {
		evs, err := readStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
		if code, _ := errCode(err); code == esdb.ErrorCodeResourceNotFound {
			continue // nothing of this stream reached the disk
		}
		if err != nil {
			t.Fatalf("round %d: read %s after restart: %v", round, s, err)
		}
		for i, e := range evs {
			o := e.OriginalEvent()
			if o.EventNumber != uint64(i) {
				t.Errorf("round %d: %s: event %d has revision %d, want %d (gap or disorder)", round, s, i, o.EventNumber, i)
			}
			if _, dup := have[o.EventID]; dup {
				t.Errorf("round %d: event %s stored twice", round, o.EventID)
			}
			have[o.EventID] = stored{stream: s, rev: o.EventNumber, pos: o.Position}
		}
	}
	known := map[uuid.UUID]bool{}
	nAcked := 0
	for _, a := range attempts {
		present := 0
		for _, id := range a.ids {
			known[id] = true
			if _, ok := have[id]; ok {
				present++
			}
		}
		if present != 0 && present != len(a.ids) {
			t.Errorf("round %d: batch of %d in %s is partly visible: %d events", round, len(a.ids), a.stream, present)
			continue
		}
		if present > 0 {
			first := have[a.ids[0]].rev
			for i, id := range a.ids {
				if got := have[id]; got.stream != a.stream || got.rev != first+uint64(i) {
					t.Errorf("round %d: batch event %d of %s stored at %s@%d, want %s@%d", round, i, a.stream, got.stream, got.rev, a.stream, first+uint64(i))
				}
			}
		}
		if !a.acked {
			continue
		}
		nAcked++
		if present == 0 {
			t.Errorf("round %d: acknowledged batch of %d in %s (last revision %d) is lost", round, len(a.ids), a.stream, a.lastRev)
			continue
		}
		last := have[a.ids[len(a.ids)-1]]
		if last.rev != a.lastRev || last.pos != a.lastPos {
			t.Errorf("round %d: acknowledged batch in %s: last event at revision %d position %+v after restart, acknowledged as %d %+v",
				round, a.stream, last.rev, last.pos, a.lastRev, a.lastPos)
		}
	}
	for id, st := range have {
		if !known[id] {
			t.Errorf("round %d: %s@%d holds event %s that nobody wrote", round, st.stream, st.rev, id)
		}
	}
	// $all holds the same events at the same positions, in one order.
	var prev esdb.Position
	seen := 0
	for _, e := range mustReadAll(t, c, esdb.ReadAllOptions{From: esdb.Start{}}, maxCount) {
		o := e.OriginalEvent()
		if !less(prev, o.Position) {
			t.Fatalf("round %d: $all position %+v not after %+v", round, o.Position, prev)
		}
		prev = o.Position
		if st, ok := have[o.EventID]; ok && st.stream == o.StreamID {
			seen++
			if st.pos != o.Position {
				t.Errorf("round %d: %s@%d at %+v in $all, %+v in the stream", round, o.StreamID, o.EventNumber, o.Position, st.pos)
			}
		}
	}
	if seen != len(have) {
		t.Errorf("round %d: $all holds %d of the %d events stored in the streams", round, seen, len(have))
	}
	t.Logf("round %d: %d attempts, %d acknowledged, %d events stored", round, len(attempts), nAcked, len(have))
}
