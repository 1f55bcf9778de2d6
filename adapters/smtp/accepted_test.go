package smtp_test

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/larkhq/lark/adapters/smtp"
)

// droppingRelay is a scripted SMTP server that accepts one message and then
// drops the connection instead of answering the next command (the client's
// NOOP/RSET/QUIT): a relay that crashes right after queueing. mailpit cannot
// be made to do this, so this stand-in is named as such. It reports how many
// messages it accepted.
func droppingRelay(t *testing.T) (addr string, accepted func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(c)
			w := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
			w("220 scripted ESMTP")
			done := false
			for !done {
				line, err := r.ReadString('\n')
				if err != nil {
					break
				}
				cmd := strings.ToUpper(strings.TrimSpace(line))
				switch {
				case strings.HasPrefix(cmd, "EHLO"):
					w("250-scripted\r\n250 8BITMIME")
				case strings.HasPrefix(cmd, "NOOP"), strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"):
					w("250 ok")
				case strings.HasPrefix(cmd, "DATA"):
					w("354 go on")
					for {
						l, err := r.ReadString('\n')
						if err != nil || l == ".\r\n" {
							break
						}
					}
					mu.Lock()
					n++
					mu.Unlock()
					w("250 queued")
					// Answer nothing more: the relay dies here.
					done = true
				default:
					w("502 no")
				}
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	return l.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// Once the relay has said 250 to DATA the message is out; an error after
// that must not make the caller retry and send a second copy.
func TestErrorAfterAcceptanceIsSuccess(t *testing.T) {
	t.Parallel()
	addr, accepted := droppingRelay(t)
	s := newSender(t, smtp.Config{URL: "smtp://" + addr + "?tls=none", Timeout: 2 * time.Second})
	if err := s.Send(ctx(t), message("once@lark.test")); err != nil {
		t.Fatalf("Send: %v, want nil because the relay accepted the message", err)
	}
	if got := accepted(); got != 1 {
		t.Errorf("relay accepted %d messages, want 1", got)
	}
}
