// Command larkbench is `make bench`: whole-system load against a real `lark
// serve` (embedded event store, private Postgres cluster) started in a
// temporary data directory. It measures, in one run so the figures compare:
//
//   - the HTTP ceiling: a no-op route behind the same middleware (auth,
//     body limits, metrics) at 64 concurrent clients;
//   - durable single-event POST /v1/events at 64 concurrent clients;
//   - latency at a fixed 70 % of that peak rate (open loop);
//   - POST /v1/events/batch with 100 events per request.
//
// Every accepted event is durable (fsynced) before its 200.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	bin := flag.String("lark", "bin/lark", "path to the lark binary")
	dur := flag.Duration("duration", 30*time.Second, "length of each measured phase")
	clients := flag.Int("clients", 64, "concurrent clients")
	batchClients := flag.Int("batch-clients", 8, "concurrent clients for the batch phase")
	flag.Parse()
	if err := run(*bin, *dur, *clients, *batchClients); err != nil {
		fmt.Fprintln(os.Stderr, "larkbench:", err)
		os.Exit(1)
	}
}

func run(bin string, dur time.Duration, clients, batchClients int) error {
	dataDir, err := os.MkdirTemp("/var/tmp", "larkbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	if err := os.Chmod(dataDir, 0o755); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"LARK_DATA_DIR="+dataDir, "LARK_HTTP_ADDR="+addr,
		"LARK_DEFAULT_EVENT_LIMIT=1000000000", "LARK_BENCH_ROUTES=1", "LARK_LOG_LEVEL=warn",
		"LARK_ESDB_URL=", "LARK_DATABASE_URL=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	key, err := readKey(stdout, 120*time.Second)
	if err != nil {
		return err
	}
	base := "http://" + addr
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}, Timeout: 30 * time.Second}
	b := &bencher{hc: hc, base: base, key: key}

	fmt.Printf("larkbench: %d clients, %s per phase, GOMAXPROCS of lark = all cores\n", clients, dur)
	b.closedLoop("warm-up", "/v1/events", eventBody, clients, 3*time.Second)
	noop := b.closedLoop("no-op route (HTTP ceiling)", "/v1/_bench/noop", eventBody, clients, dur)
	ev := b.closedLoop("POST /v1/events (durable)", "/v1/events", eventBody, clients, dur)
	at70 := b.openLoop("POST /v1/events at 70% of peak", "/v1/events", eventBody, ev.perSec*0.7, dur)
	batch := b.closedLoop("POST /v1/events/batch (100/request)", "/v1/events/batch", batchBody, batchClients, dur)
	batch.events = batch.ok * 100

	fmt.Println()
	fmt.Printf("%-40s %12s %10s %10s %8s\n", "phase", "req/s", "p50 ms", "p99 ms", "errors")
	for _, r := range []result{noop, ev, at70, batch} {
		fmt.Printf("%-40s %12.0f %10.2f %10.2f %8d\n", r.name, r.perSec, ms(r.p50), ms(r.p99), r.errors)
	}
	fmt.Println()
	fmt.Printf("durable events/s (single):  %.0f  (%.2f of the no-op ceiling; target >= 5000, stretch 10000)\n", ev.perSec, ev.perSec/noop.perSec)
	fmt.Printf("p99 at 70%% of peak:         %.2f ms (target <= 25 ms)\n", ms(at70.p99))
	fmt.Printf("durable events/s (batch):   %.0f  (target >= 30000)\n", float64(batch.events)/batch.elapsed.Seconds())
	if ev.errors > 0 || batch.errors > 0 {
		return fmt.Errorf("%d single and %d batch requests failed", ev.errors, batch.errors)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

var keyRe = regexp.MustCompile(`^\s+(\S+)\s*$`)

// readKey reads `lark serve`'s stdout until it prints the default workspace's
// key and then its listening line; it keeps draining stdout afterwards.
func readKey(r io.Reader, timeout time.Duration) (string, error) {
	type res struct {
		key string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		sc := bufio.NewScanner(r)
		key := ""
		for sc.Scan() {
			line := sc.Text()
			if m := keyRe.FindStringSubmatch(line); m != nil && key == "" {
				key = m[1]
			}
			if strings.HasPrefix(line, "Lark is listening") {
				ch <- res{key: key}
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		ch <- res{err: errors.New("lark serve exited before listening")}
	}()
	select {
	case r := <-ch:
		if r.err == nil && r.key == "" {
			r.err = errors.New("lark serve printed no API key (data directory not fresh?)")
		}
		return r.key, r.err
	case <-time.After(timeout):
		return "", errors.New("lark serve did not start in time")
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type bencher struct {
	hc   *http.Client
	base string
	key  string
	seq  atomic.Int64
}

type result struct {
	name     string
	ok       int64
	events   int64
	errors   int64
	elapsed  time.Duration
	perSec   float64
	p50, p99 time.Duration
}

func eventBody(n int64) []byte {
	return fmt.Appendf(nil, `{"email_address":"user%d@example.com","event_name":"purchase_completed","properties":{"total":%d.99,"currency":"USD","order_id":"o-%d"}}`, n%1000, n%200, n)
}

func batchBody(n int64) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i := range int64(100) {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(eventBody(n*100 + i))
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

func (b *bencher) post(path string, body []byte) (time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, b.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.key)
	start := time.Now()
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return d, fmt.Errorf("status %d", resp.StatusCode)
	}
	return d, nil
}

// closedLoop runs n clients each sending the next request as soon as the
// previous answered: the peak rate.
func (b *bencher) closedLoop(name, path string, body func(int64) []byte, n int, dur time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	lat := make([][]time.Duration, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				d, err := b.post(path, body(b.seq.Add(1)))
				if err != nil {
					errs.Add(1)
					continue
				}
				lat[i] = append(lat[i], d)
			}
		}()
	}
	wg.Wait()
	return summarise(name, lat, errs.Load(), time.Since(start))
}

// openLoop sends requests at a fixed rate whatever the answers' pace, so
// latency is measured without coordinated omission.
func (b *bencher) openLoop(name, path string, body func(int64) []byte, rate float64, dur time.Duration) result {
	if rate < 1 {
		rate = 1
	}
	interval := time.Duration(float64(time.Second) / rate)
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	sem := make(chan struct{}, 4096)
	for next := start; time.Since(start) < dur; next = next.Add(interval) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(sched time.Time) {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := b.post(path, body(b.seq.Add(1)))
			d := time.Since(sched) // from the scheduled send time
			if err != nil {
				errs.Add(1)
				return
			}
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		}(next)
	}
	wg.Wait()
	r := summarise(name, [][]time.Duration{lat}, errs.Load(), time.Since(start))
	return r
}

func summarise(name string, lat [][]time.Duration, errs int64, elapsed time.Duration) result {
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := result{name: name, ok: int64(len(all)), errors: errs, elapsed: elapsed}
	r.perSec = float64(r.ok) / elapsed.Seconds()
	if len(all) > 0 {
		r.p50 = all[len(all)*50/100]
		r.p99 = all[min(len(all)-1, len(all)*99/100)]
	}
	out, _ := json.Marshal(map[string]any{"phase": name, "ok": r.ok, "errors": errs, "per_sec": int64(r.perSec), "p50_ms": ms(r.p50), "p99_ms": ms(r.p99)})
	fmt.Println(string(out))
	return r
}
