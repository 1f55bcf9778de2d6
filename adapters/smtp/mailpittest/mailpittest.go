// Package mailpittest starts a real mailpit SMTP server (with its HTTP API)
// for tests. The binary is built from the github.com/axllent/mailpit module
// that go.mod pins (a tool directive), once per version into the user cache
// directory (~/.cache/lark-test/mailpit-<version>/mailpit), so the first
// test run on a machine pays one `go build` (about 1.5 min on 2 cores) and
// later runs start in well under a second. Set LARK_MAILPIT_BIN to use a
// binary built elsewhere.
package mailpittest

import (
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
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const module = "github.com/axllent/mailpit"

// Server is one running mailpit process.
type Server struct {
	bin      string
	dir      string
	smtpAddr string
	url      string
	httpAddr string
	args     []string
	cmd      *exec.Cmd
	done     chan struct{}
	log      *bytes.Buffer
	client   *http.Client
}

// Option changes how Start runs mailpit.
type Option func(*options)

type options struct {
	allowedRecipients string
	auth              bool
	ignoreDuplicates  bool
	certFile, keyFile string
	implicitTLS       bool
}

// WithTLS serves SMTP with the PEM certificate and key: STARTTLS (required)
// when implicit is false, TLS from the first byte when it is true.
func WithTLS(certFile, keyFile string, implicit bool) Option {
	return func(o *options) { o.certFile, o.keyFile, o.implicitTLS = certFile, keyFile, implicit }
}

// WithAllowedRecipients makes mailpit refuse (550) every RCPT TO that does
// not match the regular expression: a real permanent rejection.
func WithAllowedRecipients(regexp string) Option {
	return func(o *options) { o.allowedRecipients = regexp }
}

// WithAuth makes mailpit offer SMTP AUTH and accept any user and password.
func WithAuth() Option { return func(o *options) { o.auth = true } }

// WithIgnoreDuplicateIDs makes mailpit drop a message whose Message-ID it
// already stored (receiver-side deduplication).
func WithIgnoreDuplicateIDs() Option { return func(o *options) { o.ignoreDuplicates = true } }

// Start builds (if needed) and starts mailpit on free loopback ports, waits
// until it is ready, and stops it when the test ends. Chaos is enabled so
// that SetChaos works.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		bin:    Binary(t),
		dir:    t.TempDir(),
		client: &http.Client{Timeout: 5 * time.Second},
	}
	s.smtpAddr = freeAddr(t)
	s.url = "smtp://" + s.smtpAddr + "?tls=none"
	s.httpAddr = freeAddr(t)
	s.args = []string{
		"--smtp", s.smtpAddr, "--listen", s.httpAddr,
		"--database", filepath.Join(s.dir, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns", "--enable-chaos",
		"--max", "0", "--verbose",
	}
	if o.allowedRecipients != "" {
		s.args = append(s.args, "--smtp-allowed-recipients", o.allowedRecipients)
	}
	if o.auth {
		s.args = append(s.args, "--smtp-auth-accept-any", "--smtp-auth-allow-insecure")
	}
	if o.certFile != "" {
		s.args = append(s.args, "--smtp-tls-cert", o.certFile, "--smtp-tls-key", o.keyFile)
		if o.implicitTLS {
			s.args = append(s.args, "--smtp-require-tls")
			s.url = "smtps://" + s.smtpAddr
		} else {
			s.args = append(s.args, "--smtp-require-starttls")
			s.url = "smtp://" + s.smtpAddr + "?tls=starttls"
		}
	}
	if o.ignoreDuplicates {
		s.args = append(s.args, "--ignore-duplicate-ids")
	}
	s.start(t)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("mailpit log:\n%s", s.log.String())
		}
	})
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start mailpit: %v", err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			t.Fatalf("mailpit exited at start: %s", s.log.String())
		default:
		}
		if s.ready() {
			return
		}
		if time.Now().After(deadline) {
			s.stop()
			t.Fatalf("mailpit not ready after 30 s: %s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) ready() bool {
	resp, err := s.client.Get("http://" + s.httpAddr + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := net.DialTimeout("tcp", s.smtpAddr, time.Second) // TCP only: a TLS listener is ready too
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Stop stops mailpit (the SMTP port then refuses connections) until Restart.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop()
}

// Restart starts mailpit again on the same ports and database, so messages
// stored before Stop are still listed.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	s.start(t)
}

// SMTPURL is the LARK_SMTP_URL of this server: tls=none, or the TLS mode
// chosen with WithTLS.
func (s *Server) SMTPURL() string { return s.url }

// SMTPAddr is host:port of the SMTP listener.
func (s *Server) SMTPAddr() string { return s.smtpAddr }

// APIURL is the base URL of mailpit's HTTP API and web UI.
func (s *Server) APIURL() string { return "http://" + s.httpAddr }

// Msg is one message as mailpit stored it.
type Msg struct {
	ID        string // mailpit's database id
	MessageID string // the Message-ID header without angle brackets
	From      string // the From address
	To        string // the To addresses, comma-separated
	Subject   string
	Text      string              // the decoded text/plain body, CRLF line ends turned into LF
	Headers   map[string][]string // every header as mailpit parsed it
}

// Messages returns every stored message, oldest first, with body and headers.
func (s *Server) Messages(t testing.TB) []Msg {
	t.Helper()
	msgs, err := s.messages()
	if err != nil {
		t.Fatalf("mailpit messages: %v", err)
	}
	return msgs
}

type address struct{ Address string }

func (s *Server) messages() ([]Msg, error) {
	var list struct {
		Messages []struct {
			ID      string
			Created time.Time
		}
	}
	if err := s.getJSON("/api/v1/messages?limit=1000", &list); err != nil {
		return nil, err
	}
	sort.SliceStable(list.Messages, func(i, j int) bool { return list.Messages[i].Created.Before(list.Messages[j].Created) })
	out := make([]Msg, 0, len(list.Messages))
	for _, sum := range list.Messages {
		var full struct {
			ID, MessageID, Subject, Text string
			From                         *address
			To                           []address
		}
		if err := s.getJSON("/api/v1/message/"+sum.ID, &full); err != nil {
			return nil, err
		}
		m := Msg{ID: full.ID, MessageID: full.MessageID, Subject: full.Subject, Text: strings.ReplaceAll(full.Text, "\r\n", "\n")}
		if full.From != nil {
			m.From = full.From.Address
		}
		to := make([]string, len(full.To))
		for i, a := range full.To {
			to[i] = a.Address
		}
		m.To = strings.Join(to, ",")
		if err := s.getJSON("/api/v1/message/"+sum.ID+"/headers", &m.Headers); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// WaitFor polls until mailpit holds at least n messages and returns them
// (oldest first); it fails the test after timeout.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Msg {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs, err := s.messages()
		if err == nil && len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit: got %d messages after %v, want %d (last error: %v)", len(msgs), timeout, n, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// DeleteAll removes every stored message.
func (s *Server) DeleteAll(t testing.TB) {
	t.Helper()
	if err := s.do(http.MethodDelete, "/api/v1/messages", nil, nil); err != nil {
		t.Fatalf("mailpit delete all: %v", err)
	}
}

// Trigger is one chaos rule: mailpit answers ErrorCode (400-599) to the
// command with Probability percent (0 disables it).
type Trigger struct {
	ErrorCode   int
	Probability int
}

// Chaos are mailpit's fault-injection rules: Sender fails MAIL FROM,
// Recipient fails RCPT TO, Authentication fails AUTH.
type Chaos struct {
	Sender, Recipient, Authentication Trigger
}

// SetChaos replaces the chaos rules (Chaos{} turns every rule off).
func (s *Server) SetChaos(t testing.TB, c Chaos) {
	t.Helper()
	body, _ := json.Marshal(c)
	if err := s.do(http.MethodPut, "/api/v1/chaos", body, nil); err != nil {
		t.Fatalf("mailpit set chaos: %v", err)
	}
}

func (s *Server) getJSON(path string, v any) error {
	return s.do(http.MethodGet, path, nil, v)
}

func (s *Server) do(method, path string, body []byte, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.httpAddr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// buildMu serialises the one-time mailpit build among a test binary's
// parallel tests (the only package-level state here: a build cache lock).
var buildMu sync.Mutex

// Binary returns the path of a mailpit binary: LARK_MAILPIT_BIN if set, else
// one built from the version go.mod pins into the user cache directory.
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("LARK_MAILPIT_BIN"); bin != "" {
		return bin
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v (is it required in go.mod?)", module, err)
	}
	version := strings.TrimSpace(string(out))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "lark-test", "mailpit-"+version)
	bin := filepath.Join(dir, "mailpit")
	// Parallel tests of one process build once; other processes may build
	// at the same time, each under its own name, and the rename is atomic.
	buildMu.Lock()
	defer buildMu.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mailpit cache dir: %v", err)
	}
	tmpDir, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		t.Fatalf("mailpit build dir: %v", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "mailpit")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", tmp, module)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", module, err, b)
	}
	if err := os.Rename(tmp, bin); err != nil {
		if _, statErr := os.Stat(bin); statErr != nil {
			t.Fatalf("install mailpit: %v", err)
		}
	}
	t.Logf("built mailpit %s in %v", version, time.Since(start).Round(time.Millisecond))
	return bin
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
