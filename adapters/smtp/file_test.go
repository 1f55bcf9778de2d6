package smtp_test

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/adapters/smtp"
)

type parsed struct {
	Headers map[string]string
	Body    string
}

func readEML(t *testing.T, path string) parsed {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open eml: %v", err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatalf("parse eml: %v", err)
	}
	var dec mime.WordDecoder
	p := parsed{Headers: map[string]string{}}
	for _, name := range []string{"Message-Id", "From", "To", "Subject", "X-Lark-Run", "X-Lark-Node", "Mime-Version"} {
		v, err := dec.DecodeHeader(msg.Header.Get(name))
		if err != nil {
			t.Fatalf("decode %s: %v", name, err)
		}
		p.Headers[name] = v
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date header: %v", err)
	}
	if ct := msg.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	body := io.Reader(msg.Body)
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	p.Body = strings.ReplaceAll(string(b), "\r\n", "\n")
	return p
}

func emlFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFileSenderWritesParseableEML(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "mail")
	f, err := smtp.NewFileSender(dir)
	if err != nil {
		t.Fatalf("NewFileSender: %v", err)
	}
	m := message("<run-1.vip_email@lark.test>")
	if err := f.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := parsed{
		Headers: map[string]string{
			"Message-Id": "<run-1.vip_email@lark.test>", "From": `"Lark" <noreply@lark.test>`, "To": "<ada@example.test>",
			"Subject": m.Subject, "X-Lark-Run": "run-1", "X-Lark-Node": "vip_email", "Mime-Version": "1.0",
		},
		Body: m.Body,
	}
	if diff := cmp.Diff(want, readEML(t, filepath.Join(dir, "run-1.vip_email@lark.test.eml"))); diff != "" {
		t.Errorf("eml (-want +got):\n%s", diff)
	}

	// The same id again (a retry, here with a different rendering) replaces
	// the file: one file, the latest content, no temporary files left.
	m.Subject = "second rendering"
	m.MessageID = "run-1.vip_email@lark.test"
	if err := f.Send(context.Background(), m); err != nil {
		t.Fatalf("Send again: %v", err)
	}
	if diff := cmp.Diff([]string{"run-1.vip_email@lark.test.eml"}, emlFiles(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if got := readEML(t, filepath.Join(dir, "run-1.vip_email@lark.test.eml")).Headers["Subject"]; got != "second rendering" {
		t.Errorf("subject after overwrite = %q, want %q", got, "second rendering")
	}
}

func TestFileSenderNamesStayInsideDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := smtp.NewFileSender(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"x/y/z@x", "a/b@x", "a%2Fb@x", "q'{}~|`#$&*?^!@x"}
	for _, id := range ids {
		if err := f.Send(context.Background(), message(id)); err != nil {
			t.Fatalf("Send(%q): %v", id, err)
		}
		path, err := f.Path(id)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(path) != dir {
			t.Errorf("Path(%q) = %q, outside %q", id, path, dir)
		}
		if got := readEML(t, path).Headers["Message-Id"]; got != "<"+id+">" {
			t.Errorf("file for %q holds Message-Id %q", id, got)
		}
	}
	if err := f.Send(context.Background(), message("../../etc/passwd@x")); !errors.Is(err, smtp.ErrPermanent) {
		t.Errorf("dot-dot id: got %v, want ErrPermanent", err)
	}
	// Distinct ids never share a file ("a/b" and "a%2Fb" included).
	if got := len(emlFiles(t, dir)); got != len(ids) {
		t.Errorf("got %d files for %d ids: %v", got, len(ids), emlFiles(t, dir))
	}
}

func TestFileSenderErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := smtp.NewFileSender(dir)
	if err != nil {
		t.Fatal(err)
	}
	bad := message("no-at-sign")
	if err := f.Send(context.Background(), bad); !errors.Is(err, smtp.ErrPermanent) {
		t.Errorf("invalid message: got %v, want ErrPermanent", err)
	}
	if _, err := f.Path("no-at-sign"); !errors.Is(err, smtp.ErrPermanent) {
		t.Errorf("Path of invalid id: got %v, want ErrPermanent", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Send(cancelled, message("c@lark.test")); !errors.Is(err, smtp.ErrTemporary) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: got %v, want ErrTemporary and Canceled", err)
	}
	if got := emlFiles(t, dir); len(got) != 0 {
		t.Errorf("files after failed sends: %v", got)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := f.Send(context.Background(), message("gone@lark.test")); !errors.Is(err, smtp.ErrTemporary) {
		t.Errorf("directory gone: got %v, want ErrTemporary", err)
	}
	if _, err := smtp.NewFileSender("/proc/lark-cannot-create"); err == nil {
		t.Error("NewFileSender in /proc succeeded")
	}
}
