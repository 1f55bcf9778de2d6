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
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func main() {
	bin := flag.String("lark", "bin/lark", "path to the lark binary")
	dur := flag.Duration("duration", 30*time.Second, "length of each measured phase")
	clients := flag.Int("clients", 64, "concurrent clients")
	batchClients := flag.Int("batch-clients", 8, "concurrent clients for the batch phase")
	openRate := flag.Float64("open-rate", 0, "if > 0, the open-loop phase's rate in requests/s instead of 70% of the measured peak (to compare two builds at the same load)")
	profDir := flag.String("profile", "", "if set, a directory where a CPU profile of lark serve is written for each phase (LARK_PPROF_ADDR)")
	flag.Parse()
	if err := run(*bin, *dur, *clients, *batchClients, *profDir, *openRate); err != nil {
		fmt.Fprintln(os.Stderr, "larkbench:", err)
		os.Exit(1)
	}
}

func run(bin string, dur time.Duration, clients, batchClients int, profDir string, openRate float64) error {
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
	pprofAddr := ""
	if profDir != "" {
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			return err
		}
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
		cmd.Env = append(cmd.Env, "LARK_PPROF_ADDR="+pprofAddr)
	}
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
	b := &bencher{hc: hc, base: base, key: key, larkPID: cmd.Process.Pid, pgPIDFile: filepath.Join(dataDir, "postgres", "data", "postmaster.pid"), pprofAddr: pprofAddr, profDir: profDir, profDur: dur}

	fmt.Printf("larkbench: %d clients, %s per phase, GOMAXPROCS of lark = all cores\n", clients, dur)
	b.closedLoop("warm-up", "/v1/events", eventBody, clients, 3*time.Second)
	b.settle()
	noop := b.closedLoop("no-op route (HTTP ceiling)", "/v1/_bench/noop", eventBody, clients, dur)
	b.settle()
	ev := b.closedLoop("POST /v1/events (durable)", "/v1/events", eventBody, clients, dur)
	b.settle()
	openName, rate := "POST /v1/events at 70% of peak", ev.perSec*0.7
	if openRate > 0 {
		openName, rate = fmt.Sprintf("POST /v1/events at %.0f/s", openRate), openRate
	}
	at70 := b.openLoop(openName, "/v1/events", eventBody, rate, dur)
	b.settle()
	batch := b.closedLoop("POST /v1/events/batch (100/request)", "/v1/events/batch", batchBody, batchClients, dur)
	batch.events = batch.ok * 100

	fmt.Println()
	fmt.Printf("%-40s %12s %10s %10s %8s   %s\n", "phase", "req/s", "p50 ms", "p99 ms", "errors", "CPU cores: lark / postgres / larkbench / machine")
	for _, r := range []result{noop, ev, at70, batch} {
		fmt.Printf("%-40s %12.0f %10.2f %10.2f %8d   %.2f / %.2f / %.2f / %.2f of %d\n", r.name, r.perSec, ms(r.p50), ms(r.p99), r.errors,
			r.cpu.lark, r.cpu.postgres, r.cpu.bench, r.cpu.machine, runtime.NumCPU())
	}
	fmt.Println()
	fmt.Printf("durable events/s (single):  %.0f  (%.2f of the no-op ceiling; target >= 5000, stretch 10000)\n", ev.perSec, ev.perSec/noop.perSec)
	fmt.Printf("p99 at %s: %.2f ms (target <= 25 ms at 70%% of peak)\n", strings.TrimPrefix(openName, "POST /v1/events at "), ms(at70.p99))
	fmt.Printf("durable events/s (batch):   %.0f  (target >= 30000)\n", float64(batch.events)/batch.elapsed.Seconds())
	if ev.errors > 0 || batch.errors > 0 {
		return fmt.Errorf("%d single and %d batch requests failed", ev.errors, batch.errors)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

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

	larkPID   int
	pgPIDFile string // the private cluster's postmaster.pid
	pprofAddr string // lark serve's LARK_PPROF_ADDR, "" when not profiling
	profDir   string
	profDur   time.Duration
}

// cpuShare is how many cores were busy during a phase: lark serve itself
// (with its embedded event store), its private Postgres cluster (the
// postmaster and its backends), this load generator, and the whole machine
// (all of these plus anything else running).
type cpuShare struct{ lark, postgres, bench, machine float64 }

type cpuSample struct {
	at                    time.Time
	lark, postgres, bench time.Duration
	machineBusy, ticks    float64
}

func (b *bencher) sample() cpuSample {
	s := cpuSample{at: time.Now(), lark: procCPU(b.larkPID), postgres: b.postgresCPU()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s.machineBusy, s.ticks = machineCPU()
	return s
}

func (s cpuSample) since(prev cpuSample) cpuShare {
	wall := s.at.Sub(prev.at).Seconds()
	if wall <= 0 {
		return cpuShare{}
	}
	c := cpuShare{lark: (s.lark - prev.lark).Seconds() / wall, bench: (s.bench - prev.bench).Seconds() / wall,
		postgres: (s.postgres - prev.postgres).Seconds() / wall}
	if s.ticks > prev.ticks {
		c.machine = (s.machineBusy - prev.machineBusy) / (s.ticks - prev.ticks) * float64(runtime.NumCPU())
	}
	return c
}

// procCPU is a process's user+system CPU time from /proc (0 if unreadable).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at state.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return time.Duration((ut + st) / 100 * float64(time.Second)) // USER_HZ is 100 on Linux
}

// scrape reads lark serve's /metrics (nil on failure).
func (b *bencher) scrape() map[string]*dto.MetricFamily {
	resp, err := b.hc.Get(b.base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	return mf
}

// serverSide prints what lark itself saw during a phase, from the
// difference of two scrapes of its histograms: the route's latency inside
// the server (from the request's arrival at the handler to its answer), the
// embedded event store's group commit time (with fsync), and the events
// per ingest append. A tail the client sees but the server does not comes
// from outside the handler: the generator, the kernel, CPU contention.
func serverSide(name, route string, before, after map[string]*dto.MetricFamily) {
	if before == nil || after == nil {
		return
	}
	out := map[string]any{"phase": name}
	q := func(key, family string, match func(*dto.Metric) bool, scale float64) {
		b, a := bucketsOf(before[family], match), bucketsOf(after[family], match)
		if a == nil {
			return
		}
		var total float64
		for i := range a {
			if b != nil {
				a[i].count -= b[i].count
			}
		}
		total = a[len(a)-1].count
		if total <= 0 {
			return
		}
		at := func(f float64) float64 {
			for _, x := range a {
				if x.count >= f*total {
					return round2(x.le * scale)
				}
			}
			return -1
		}
		out[key+"_count"] = int64(total)
		out[key+"_p50_le"] = at(0.5)
		out[key+"_p99_le"] = at(0.99)
	}
	q("server_ms", "lark_http_request_duration_seconds", func(m *dto.Metric) bool {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && l.GetValue() != route {
				return false
			}
			if l.GetName() == "status" && l.GetValue() != "200" {
				return false
			}
		}
		return true
	}, 1000)
	q("esdb_commit_ms", "lark_esdb_commit_seconds", nil, 1000)
	q("append_events", "lark_ingest_append_events", nil, 1)
	j, _ := json.Marshal(out)
	fmt.Println(string(j))
}

type bucket struct{ le, count float64 }

// bucketsOf sums the cumulative buckets of the family's histograms that
// match (all when match is nil); the last bucket is +Inf.
func bucketsOf(mf *dto.MetricFamily, match func(*dto.Metric) bool) []bucket {
	if mf == nil {
		return nil
	}
	var out []bucket
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		if h == nil || (match != nil && !match(m)) {
			continue
		}
		if out == nil {
			for _, bk := range h.GetBucket() {
				out = append(out, bucket{le: bk.GetUpperBound()})
			}
			out = append(out, bucket{le: math.Inf(1)})
		}
		for i, bk := range h.GetBucket() {
			if i < len(out)-1 {
				out[i].count += float64(bk.GetCumulativeCount())
			}
		}
		out[len(out)-1].count += float64(h.GetSampleCount())
	}
	return out
}

// settle waits, before a phase, until lark serve has finished the work the
// previous phase left behind (its projections and process manager catching
// up on the events just stored): until lark and its Postgres together use
// under a tenth of a core for a quarter second, or 60 s at most. Otherwise
// the first seconds of a phase would measure the previous one's backlog.
func (b *bencher) settle() {
	start := time.Now()
	prev := b.sample()
	for time.Since(start) < time.Minute {
		time.Sleep(250 * time.Millisecond)
		cur := b.sample()
		c := cur.since(prev)
		prev = cur
		if c.lark+c.postgres < 0.1 {
			break
		}
	}
	out, _ := json.Marshal(map[string]any{"settled_after_ms": time.Since(start).Milliseconds()})
	fmt.Println(string(out))
}

// postgresCPU is the CPU time of the private cluster's postmaster and its
// live children (backends that exited during a phase are not counted; the
// pool's connections live for the whole run).
func (b *bencher) postgresCPU() time.Duration {
	raw, err := os.ReadFile(b.pgPIDFile)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	total := procCPU(pm)
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == pm {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(st, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(st[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			total += procCPU(pid)
		}
	}
	return total
}

// machineCPU returns busy and total ticks of all cores from /proc/stat.
func machineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// profile fetches a CPU profile of lark serve covering the phase that is
// about to start (when -profile is set).
func (b *bencher) profile(name string) func() {
	if b.pprofAddr == "" {
		return func() {}
	}
	done := make(chan struct{})
	secs := max(1, int(b.profDur.Seconds())-1)
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.pprofAddr, secs))
		if err != nil {
			fmt.Fprintln(os.Stderr, "larkbench: profile:", err)
			return
		}
		defer resp.Body.Close()
		file := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, strings.ToLower(name))
		f, err := os.Create(filepath.Join(b.profDir, file+".pprof"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "larkbench: profile:", err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}()
	return func() { <-done }
}

type result struct {
	server   map[string]any // server-side figures of the phase from lark's /metrics
	cpu      cpuShare
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
	stopProf := b.profile(name)
	defer stopProf()
	m0 := b.scrape()
	s0 := b.sample()
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
	cpu := b.sample().since(s0)
	serverSide(name, path, m0, b.scrape())
	return summarise(name, lat, errs.Load(), time.Since(start), cpu)
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
	bySecond := make([][]time.Duration, int(dur/time.Second)+2)
	var errs atomic.Int64
	var wg sync.WaitGroup
	stopProf := b.profile(name)
	defer stopProf()
	m0 := b.scrape()
	s0 := b.sample()
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
			if i := int(sched.Sub(start) / time.Second); i < len(bySecond) {
				bySecond[i] = append(bySecond[i], d)
			}
			mu.Unlock()
		}(next)
	}
	wg.Wait()
	cpu := b.sample().since(s0)
	serverSide(name, path, m0, b.scrape())
	// Where the tail comes from: the p99 of the requests scheduled in each
	// second of the phase (a stall shows as one bad second).
	var perSec []float64
	for _, l := range bySecond {
		if len(l) > 0 {
			slices.Sort(l)
			perSec = append(perSec, round2(ms(l[min(len(l)-1, len(l)*99/100)])))
		}
	}
	out, _ := json.Marshal(map[string]any{"phase": name, "p99_ms_by_second": perSec})
	fmt.Println(string(out))
	return summarise(name, [][]time.Duration{lat}, errs.Load(), time.Since(start), cpu)
}

func summarise(name string, lat [][]time.Duration, errs int64, elapsed time.Duration, cpu cpuShare) result {
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := result{name: name, ok: int64(len(all)), errors: errs, elapsed: elapsed, cpu: cpu}
	r.perSec = float64(r.ok) / elapsed.Seconds()
	if len(all) > 0 {
		r.p50 = all[len(all)*50/100]
		r.p99 = all[min(len(all)-1, len(all)*99/100)]
	}
	var p999, worst time.Duration
	if len(all) > 0 {
		p999, worst = all[min(len(all)-1, len(all)*999/1000)], all[len(all)-1]
	}
	out, _ := json.Marshal(map[string]any{"phase": name, "ok": r.ok, "errors": errs, "per_sec": int64(r.perSec), "p50_ms": ms(r.p50), "p99_ms": ms(r.p99),
		"p999_ms": ms(p999), "max_ms": ms(worst),
		"cpu_lark": round2(cpu.lark), "cpu_postgres": round2(cpu.postgres), "cpu_larkbench": round2(cpu.bench), "cpu_machine": round2(cpu.machine)})
	fmt.Println(string(out))
	return r
}
