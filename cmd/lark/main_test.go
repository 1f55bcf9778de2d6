package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/larkhq/lark/adapters/postgres"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
)

// larkBin is the lark binary built once for the process-level tests.
var larkBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lark-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	larkBin = filepath.Join(dir, "lark")
	build := exec.Command("go", "build", "-race", "-o", larkBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build lark:", err)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one lark process under test, with its output captured.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	lines  chan string
	waited chan struct{}
}

// startLark starts `lark args...` with env added to the test's environment.
func startLark(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(larkBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	p := &proc{t: t, cmd: cmd, lines: make(chan string, 1024), waited: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{p: p}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lark %v: %v", args, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	go func() { _ = cmd.Wait(); close(p.waited) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of lark %v:\n%s", args, p.output())
		}
	})
	return p
}

type lockedWriter struct{ p *proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitLine returns the first stdout line containing substr.
func (p *proc) waitLine(substr string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("lark exited before printing %q", substr)
			}
			if strings.Contains(l, substr) {
				return l
			}
		case <-deadline:
			p.t.Fatalf("lark did not print %q within %s", substr, timeout)
		}
	}
}

// nextLine returns the next non-empty stdout line.
func (p *proc) nextLine(timeout time.Duration) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatal("lark exited")
			}
			if strings.TrimSpace(l) != "" {
				return strings.TrimSpace(l)
			}
		case <-deadline:
			p.t.Fatalf("lark printed nothing within %s", timeout)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.waited:
	case <-time.After(30 * time.Second):
		p.t.Fatal("lark did not stop within 30s of SIGINT")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("lark exited with %d after SIGINT", code)
	}
}

// kill is kill -9.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.waited
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LARK_") {
			env = append(env, kv)
		}
	}
	return append(env, "LARK_LOG_LEVEL=warn")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runLark runs a short-lived lark command and returns its stdout.
func runLark(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(larkBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lark %v: %v\nstdout: %s\nstderr: %s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// dataDir returns a fresh data directory the postgres OS user can traverse.
func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "lark-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A lark serve killed by the test leaves its private cluster running.
		_ = postgres.StopDir(context.Background(), filepath.Join(dir, "postgres"))
		os.RemoveAll(dir)
	})
	return dir
}

type client struct {
	t    *testing.T
	base string
	key  string
	hc   *http.Client
}

func newClient(t *testing.T, addr, key string) *client {
	return &client{t: t, base: "http://" + addr, key: key, hc: &http.Client{Timeout: 30 * time.Second}}
}

// do sends a JSON request and decodes the answer into out (if non-nil).
func (c *client) do(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

type usageBody struct {
	Data struct {
		Period string `json:"period"`
		Used   int64  `json:"used"`
		Limit  int64  `json:"limit"`
	} `json:"data"`
}

func (c *client) usage() usageBody {
	c.t.Helper()
	var u usageBody
	code, err := c.do(http.MethodGet, "/v1/usage", nil, &u)
	if err != nil || code != http.StatusOK {
		c.t.Fatalf("GET /v1/usage: %d %v", code, err)
	}
	return u
}

func event(i int) map[string]any {
	return map[string]any{"email_address": fmt.Sprintf("u%d@example.com", i), "event_name": "purchase_completed", "properties": map[string]any{"i": i}}
}

type createdWorkspace struct {
	WorkspaceID string `json:"workspace_id"`
	APIKey      string `json:"api_key"`
}

func parseWorkspace(t *testing.T, out string) createdWorkspace {
	t.Helper()
	var w createdWorkspace
	if err := json.Unmarshal([]byte(out), &w); err != nil || w.APIKey == "" || w.WorkspaceID == "" {
		t.Fatalf("workspace create printed %q: %v", out, err)
	}
	return w
}
