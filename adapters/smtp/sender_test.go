package smtp_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/larkhq/lark/adapters/smtp"
	"github.com/larkhq/lark/adapters/smtp/mailpittest"
)

func newSender(t *testing.T, cfg smtp.Config) *smtp.Sender {
	t.Helper()
	s, err := smtp.NewSender(cfg)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	return s
}

func message(id string) smtp.Message {
	return smtp.Message{
		MessageID: id,
		From:      "Lark <noreply@lark.test>",
		To:        "ada@example.test",
		Subject:   "Thanks for your order, Ada ✓",
		Body:      "Hi Ada,\n\nyour order 42 of 99.99 € is on its way.\nA line longer than seventy-six characters so that quoted-printable has to soft-wrap it somewhere.\n",
		Headers:   map[string]string{"X-Lark-Run": "run-1", "X-Lark-Node": "vip_email"},
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSendArrivesExactly(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t)
	s := newSender(t, smtp.Config{URL: mp.SMTPURL()})

	m := message("run-1.vip_email@lark.test")
	if err := s.Send(ctx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := mp.WaitFor(t, 1, 5*time.Second)
	want := []mailpittest.Msg{{
		MessageID: "run-1.vip_email@lark.test",
		From:      "noreply@lark.test",
		To:        "ada@example.test",
		Subject:   m.Subject,
		Text:      m.Body,
	}}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(mailpittest.Msg{}, "ID", "Headers")); diff != "" {
		t.Errorf("stored message (-want +got):\n%s", diff)
	}
	h := got[0].Headers
	for name, value := range map[string]string{
		"Message-Id": "<run-1.vip_email@lark.test>", "X-Lark-Run": "run-1", "X-Lark-Node": "vip_email", "User-Agent": "Lark",
	} {
		if v := h[name]; len(v) != 1 || v[0] != value {
			t.Errorf("header %s = %q, want [%q]", name, v, value)
		}
	}
	if ct := strings.Join(h["Content-Type"], ";"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(strings.ToLower(ct), "utf-8") {
		t.Errorf("Content-Type = %q, want text/plain in UTF-8", ct)
	}
}

func TestMessageIDWithOrWithoutBracketsIsTheSameHeader(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t)
	s := newSender(t, smtp.Config{URL: mp.SMTPURL()})
	for _, id := range []string{"<a.b@lark.test>", "a.b@lark.test"} {
		if err := s.Send(ctx(t), message(id)); err != nil {
			t.Fatalf("Send(%s): %v", id, err)
		}
	}
	got := mp.WaitFor(t, 2, 5*time.Second)
	for _, m := range got {
		if diff := cmp.Diff([]string{"<a.b@lark.test>"}, m.Headers["Message-Id"]); diff != "" {
			t.Errorf("Message-Id header (-want +got):\n%s", diff)
		}
	}
}

// Sending twice delivers twice: SMTP has no idempotency, and deduplication
// is the receiver's. What this package guarantees is that both copies carry
// the same Message-ID, which a receiver that deduplicates (here mailpit with
// --ignore-duplicate-ids) uses to keep one.
func TestSameMessageTwiceKeepsOneMessageID(t *testing.T) {
	t.Parallel()
	t.Run("plain receiver stores both with one id", func(t *testing.T) {
		t.Parallel()
		mp := mailpittest.Start(t)
		s := newSender(t, smtp.Config{URL: mp.SMTPURL()})
		m := message("retry@lark.test")
		for range 2 {
			if err := s.Send(ctx(t), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		got := mp.WaitFor(t, 2, 5*time.Second)
		if len(got) != 2 || got[0].MessageID != "retry@lark.test" || got[1].MessageID != got[0].MessageID {
			t.Fatalf("got %d messages with ids %v, want 2 with retry@lark.test", len(got), ids(got))
		}
	})
	t.Run("deduplicating receiver keeps one", func(t *testing.T) {
		t.Parallel()
		mp := mailpittest.Start(t, mailpittest.WithIgnoreDuplicateIDs())
		s := newSender(t, smtp.Config{URL: mp.SMTPURL()})
		m := message("retry@lark.test")
		for range 2 {
			if err := s.Send(ctx(t), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		if err := s.Send(ctx(t), message("other@lark.test")); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := mp.WaitFor(t, 2, 5*time.Second)
		time.Sleep(100 * time.Millisecond)
		got = mp.Messages(t)
		if diff := cmp.Diff([]string{"retry@lark.test", "other@lark.test"}, ids(got)); diff != "" {
			t.Errorf("stored ids (-want +got):\n%s", diff)
		}
	})
}

func ids(msgs []mailpittest.Msg) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.MessageID
	}
	return out
}

func TestAuthenticatedRelay(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, mailpittest.WithAuth())
	url := strings.Replace(mp.SMTPURL(), "smtp://", "smtp://lark:s3cret@", 1)
	s := newSender(t, smtp.Config{URL: url})
	if err := s.Send(ctx(t), message("auth@lark.test")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := mp.WaitFor(t, 1, 5*time.Second); got[0].MessageID != "auth@lark.test" {
		t.Errorf("got id %q, want auth@lark.test", got[0].MessageID)
	}
}

func TestServerDownIsTemporaryAndOpensTheBreaker(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t)
	reg := prometheus.NewRegistry()
	s := newSender(t, smtp.Config{URL: mp.SMTPURL(), BreakerFailures: 3, BreakerOpenFor: 300 * time.Millisecond, Registerer: reg})
	if err := s.Send(ctx(t), message("before@lark.test")); err != nil {
		t.Fatalf("Send before stop: %v", err)
	}
	mp.Stop(t)

	for i := range 3 {
		start := time.Now()
		err := s.Send(ctx(t), message("down@lark.test"))
		if !errors.Is(err, smtp.ErrTemporary) || errors.Is(err, smtp.ErrPermanent) {
			t.Fatalf("send %d to a stopped server: %v, want ErrTemporary only", i, err)
		}
		if errors.Is(err, smtp.ErrCircuitOpen) {
			t.Fatalf("send %d: breaker open after %d failures, want it to open after 3", i, i)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("send %d took %v, want a quick connection-refused failure", i, d)
		}
	}
	start := time.Now()
	err := s.Send(ctx(t), message("down@lark.test"))
	if !errors.Is(err, smtp.ErrCircuitOpen) || !errors.Is(err, smtp.ErrTemporary) {
		t.Fatalf("send after 3 failures: %v, want ErrCircuitOpen and ErrTemporary", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("open breaker took %v to fail, want fast", d)
	}

	mp.Restart(t)
	time.Sleep(350 * time.Millisecond) // the breaker lets a probe through
	if err := s.Send(ctx(t), message("after@lark.test")); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	if diff := cmp.Diff([]string{"before@lark.test", "after@lark.test"}, ids(mp.WaitFor(t, 2, 5*time.Second))); diff != "" {
		t.Errorf("stored ids (-want +got):\n%s", diff)
	}
	want := map[string]float64{
		"lark_smtp_circuit_open":                      0,
		`lark_smtp_failed_total{kind="circuit_open"}`: 1,
		`lark_smtp_failed_total{kind="permanent"}`:    0,
		`lark_smtp_failed_total{kind="temporary"}`:    3,
		"lark_smtp_sent_total":                        2,
		"lark_smtp_send_seconds_count":                5, // sent and temporary, not fast-failed
	}
	if diff := cmp.Diff(want, metricValues(t, reg)); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

func TestRejectionsAreClassified(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, mailpittest.WithAllowedRecipients(`@example\.test$`))
	s := newSender(t, smtp.Config{URL: mp.SMTPURL(), BreakerFailures: 2})

	// A recipient the server refuses (550) is the message's fault: permanent,
	// and however many there are, they never open the breaker.
	bad := message("bad-rcpt@lark.test")
	bad.To = "someone@elsewhere.test"
	for i := range 5 {
		err := s.Send(ctx(t), bad)
		if !errors.Is(err, smtp.ErrPermanent) || errors.Is(err, smtp.ErrTemporary) {
			t.Fatalf("send %d to a refused recipient: %v, want ErrPermanent only", i, err)
		}
	}

	tests := []struct {
		name  string
		chaos mailpittest.Chaos
		want  error
	}{
		{"mailbox busy 451 on RCPT", mailpittest.Chaos{Recipient: mailpittest.Trigger{ErrorCode: 451, Probability: 100}}, smtp.ErrTemporary},
		{"sender refused 553 on MAIL FROM", mailpittest.Chaos{Sender: mailpittest.Trigger{ErrorCode: 553, Probability: 100}}, smtp.ErrPermanent},
		{"try later 421 on MAIL FROM", mailpittest.Chaos{Sender: mailpittest.Trigger{ErrorCode: 421, Probability: 100}}, smtp.ErrTemporary},
		{"no such user 550 on RCPT", mailpittest.Chaos{Recipient: mailpittest.Trigger{ErrorCode: 550, Probability: 100}}, smtp.ErrPermanent},
	}
	for _, tt := range tests {
		mp.SetChaos(t, tt.chaos)
		err := s.Send(ctx(t), message("chaos@lark.test"))
		other := smtp.ErrPermanent
		if tt.want == smtp.ErrPermanent {
			other = smtp.ErrTemporary
		}
		if !errors.Is(err, tt.want) || errors.Is(err, other) {
			t.Errorf("%s: got %v, want %v only", tt.name, err, tt.want)
		}
	}
	mp.SetChaos(t, mailpittest.Chaos{})
	time.Sleep(10 * time.Millisecond)
	// Two temporary failures in a row opened the breaker (BreakerFailures: 2)?
	// Only one was consecutive (451 then 553 then 421 then 550), so it is closed.
	if err := s.Send(ctx(t), message("good@lark.test")); err != nil {
		t.Fatalf("send after chaos off: %v", err)
	}
	if diff := cmp.Diff([]string{"good@lark.test"}, ids(mp.WaitFor(t, 1, 5*time.Second))); diff != "" {
		t.Errorf("stored ids (-want +got):\n%s", diff)
	}
}

// silentServer accepts TCP connections and never answers: a relay that hangs.
// A real SMTP server cannot be made to do this, so it is a stand-in, named as
// such.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

func TestHangingRelayRespectsContextAndTimeout(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	t.Run("ctx deadline", func(t *testing.T) {
		s := newSender(t, smtp.Config{URL: "smtp://" + addr + "?tls=none", Timeout: time.Minute})
		c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Send(c, message("hang@lark.test"))
		if !errors.Is(err, smtp.ErrTemporary) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want ErrTemporary and DeadlineExceeded", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v, want about 200ms", d)
		}
	})
	t.Run("ctx cancelled", func(t *testing.T) {
		s := newSender(t, smtp.Config{URL: "smtp://" + addr + "?tls=none", Timeout: time.Minute})
		c, cancel := context.WithCancel(context.Background())
		time.AfterFunc(150*time.Millisecond, cancel)
		start := time.Now()
		err := s.Send(c, message("hang@lark.test"))
		if !errors.Is(err, smtp.ErrTemporary) || !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want ErrTemporary and Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v, want about 150ms", d)
		}
	})
	t.Run("config timeout", func(t *testing.T) {
		s := newSender(t, smtp.Config{URL: "smtp://" + addr + "?tls=none", Timeout: 200 * time.Millisecond})
		start := time.Now()
		err := s.Send(context.Background(), message("hang@lark.test"))
		if !errors.Is(err, smtp.ErrTemporary) {
			t.Errorf("got %v, want ErrTemporary", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v, want about 200ms", d)
		}
	})
}

func TestInvalidMessagesArePermanentAndNeverDialled(t *testing.T) {
	t.Parallel()
	// Nothing listens on a just-freed port: a dial would be a temporary error.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	_ = l.Close()
	s := newSender(t, smtp.Config{URL: "smtp://" + addr + "?tls=none"})
	tests := []struct {
		name   string
		change func(*smtp.Message)
	}{
		{"empty message-id", func(m *smtp.Message) { m.MessageID = "" }},
		{"message-id without @", func(m *smtp.Message) { m.MessageID = "run-1" }},
		{"message-id with space", func(m *smtp.Message) { m.MessageID = "a b@lark.test" }},
		{"message-id with two @", func(m *smtp.Message) { m.MessageID = "a@b@lark.test" }},
		{"message-id with inner bracket", func(m *smtp.Message) { m.MessageID = "<a>@lark.test" }},
		{"message-id leading dot", func(m *smtp.Message) { m.MessageID = ".a@lark.test" }},
		{"bad from", func(m *smtp.Message) { m.From = "not an address" }},
		{"bad to", func(m *smtp.Message) { m.To = "" }},
		{"reserved header", func(m *smtp.Message) { m.Headers = map[string]string{"Message-ID": "<x@y>"} }},
		{"reserved header any case", func(m *smtp.Message) { m.Headers = map[string]string{"bcc": "eve@example.test"} }},
		{"header injection", func(m *smtp.Message) { m.Headers = map[string]string{"X-A": "1\r\nBcc: eve@example.test"} }},
		{"bad header name", func(m *smtp.Message) { m.Headers = map[string]string{"X A": "1"} }},
	}
	for _, tt := range tests {
		m := message("ok@lark.test")
		tt.change(&m)
		err := s.Send(ctx(t), m)
		if !errors.Is(err, smtp.ErrPermanent) || errors.Is(err, smtp.ErrTemporary) {
			t.Errorf("%s: got %v, want ErrPermanent only", tt.name, err)
		}
	}
}

func TestMultiLineSubjectIsUnfolded(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t)
	s := newSender(t, smtp.Config{URL: mp.SMTPURL()})
	m := message("fold@lark.test")
	m.Subject = "\n  Your order\r\n  is on its way  \n"
	if err := s.Send(ctx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := mp.WaitFor(t, 1, 5*time.Second)[0].Subject; got != "Your order is on its way" {
		t.Errorf("subject = %q, want %q", got, "Your order is on its way")
	}
	if n := len(mp.Messages(t)[0].Headers["Bcc"]); n != 0 {
		t.Errorf("got a Bcc header")
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		want    smtp.Endpoint
		wantErr bool
	}{
		{url: "smtp://relay.example:2525?tls=none", want: smtp.Endpoint{Host: "relay.example", Port: 2525, TLS: smtp.TLSNone}},
		{url: "smtp://u%40x:p%3Aw@relay.example", want: smtp.Endpoint{Host: "relay.example", Port: 587, Username: "u@x", Password: "p:w", TLS: smtp.TLSStartTLS}},
		{url: "smtp://relay.example?tls=TLS", want: smtp.Endpoint{Host: "relay.example", Port: 465, TLS: smtp.TLSImplicit}},
		{url: "smtps://relay.example", want: smtp.Endpoint{Host: "relay.example", Port: 465, TLS: smtp.TLSImplicit}},
		{url: "smtp://relay.example?tls=none", want: smtp.Endpoint{Host: "relay.example", Port: 25, TLS: smtp.TLSNone}},
		{url: "smtp://[::1]:1025?tls=starttls", want: smtp.Endpoint{Host: "::1", Port: 1025, TLS: smtp.TLSStartTLS}},
		{url: "http://relay.example", wantErr: true},
		{url: "smtp://relay.example?tls=maybe", wantErr: true},
		{url: "smtp://:25", wantErr: true},
		{url: "smtp://relay.example:0", wantErr: true},
		{url: "smtp://relay.example:99999", wantErr: true},
		{url: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := smtp.ParseURL(tt.url)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseURL(%q) error = %v, want error %v", tt.url, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseURL(%q) (-want +got):\n%s", tt.url, diff)
		}
	}
	if _, err := smtp.NewSender(smtp.Config{URL: "smtp://relay.example?tls=maybe"}); err == nil {
		t.Error("NewSender accepted a bad URL")
	}
}

// metricValues flattens a registry into "name{label=\"v\"}" → value.
func metricValues(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			if len(m.GetLabel()) > 0 {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"=\""+l.GetValue()+"\"")
				}
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
