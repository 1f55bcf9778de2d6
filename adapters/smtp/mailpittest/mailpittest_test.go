package mailpittest_test

import (
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/adapters/smtp/mailpittest"
)

func send(t *testing.T, addr, id, to string) error {
	t.Helper()
	msg := "Message-ID: <" + id + ">\r\nFrom: a@lark.test\r\nTo: " + to + "\r\nSubject: s " + id + "\r\n\r\nbody " + id + "\r\nline 2\r\n"
	return smtp.SendMail(addr, nil, "a@lark.test", []string{to}, []byte(msg))
}

func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, mailpittest.WithAllowedRecipients(`@ok\.test$`))
	if !strings.HasPrefix(mp.SMTPURL(), "smtp://127.0.0.1:") || !strings.HasSuffix(mp.SMTPURL(), "?tls=none") {
		t.Errorf("SMTPURL = %q", mp.SMTPURL())
	}
	for _, id := range []string{"1@x", "2@x"} {
		if err := send(t, mp.SMTPAddr(), id, "b@ok.test"); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
	}
	got := mp.WaitFor(t, 2, 5*time.Second)
	want := []mailpittest.Msg{
		{MessageID: "1@x", From: "a@lark.test", To: "b@ok.test", Subject: "s 1@x", Text: "body 1@x\nline 2\n"},
		{MessageID: "2@x", From: "a@lark.test", To: "b@ok.test", Subject: "s 2@x", Text: "body 2@x\nline 2\n"},
	}
	for i := range got {
		got[i].ID, got[i].Headers = "", nil
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages, oldest first (-want +got):\n%s", diff)
	}

	err := send(t, mp.SMTPAddr(), "3@x", "b@elsewhere.test")
	if err == nil || !strings.HasPrefix(err.Error(), "5") {
		t.Errorf("send to a recipient outside the allowed pattern: %v, want a 5xx", err)
	}
	mp.SetChaos(t, mailpittest.Chaos{Sender: mailpittest.Trigger{ErrorCode: 451, Probability: 100}})
	if err := send(t, mp.SMTPAddr(), "4@x", "b@ok.test"); err == nil || !strings.HasPrefix(err.Error(), "451") {
		t.Errorf("send under chaos: %v, want 451", err)
	}
	mp.SetChaos(t, mailpittest.Chaos{})

	mp.Stop(t)
	if err := send(t, mp.SMTPAddr(), "5@x", "b@ok.test"); err == nil {
		t.Error("send to a stopped server succeeded")
	}
	mp.Restart(t)
	if n := len(mp.Messages(t)); n != 2 {
		t.Errorf("after restart: %d messages, want the 2 stored before", n)
	}
	mp.DeleteAll(t)
	if n := len(mp.Messages(t)); n != 0 {
		t.Errorf("after DeleteAll: %d messages, want 0", n)
	}
}
