package smtp

import (
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// userAgent is written as User-Agent and X-Mailer instead of go-mail's default.
const userAgent = "Lark"

// reserved are the header fields Message sets itself; Headers may not name them.
var reserved = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "message-id": true,
	"date": true, "mime-version": true, "content-type": true, "content-transfer-encoding": true,
	"user-agent": true, "x-mailer": true, "sender": true, "reply-to": true,
}

// NormalizeMessageID returns id without surrounding angle brackets after
// checking that it is a dot-atom "id-left@id-right" of RFC 5322 (printable
// ASCII letters, digits and !#$%&'*+-/=?^_`{|}~ with inner dots). The error
// wraps ErrPermanent.
func NormalizeMessageID(id string) (string, error) {
	bare := id
	if strings.HasPrefix(bare, "<") && strings.HasSuffix(bare, ">") {
		bare = bare[1 : len(bare)-1]
	}
	left, right, ok := strings.Cut(bare, "@")
	if !ok || !isDotAtom(left) || !isDotAtom(right) {
		return "", fmt.Errorf("message-id %q is not id-left@id-right: %w", id, ErrPermanent)
	}
	return bare, nil
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// unfold turns every line break (and the blanks around it) into one space, so
// that a subject rendered from a multi-line template stays one header line.
func unfold(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.TrimSpace(strings.Join(lines, " "))
}

// build validates m and turns it into a go-mail message dated at. Every error
// wraps ErrPermanent: the same message would fail the same way again.
func build(m Message, at time.Time) (*gomail.Msg, string, error) {
	id, err := NormalizeMessageID(m.MessageID)
	if err != nil {
		return nil, "", err
	}
	if _, err := mail.ParseAddress(m.From); err != nil {
		return nil, "", fmt.Errorf("from address %q: %v: %w", m.From, err, ErrPermanent)
	}
	if _, err := mail.ParseAddress(m.To); err != nil {
		return nil, "", fmt.Errorf("to address %q: %v: %w", m.To, err, ErrPermanent)
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(m.From); err != nil {
		return nil, "", fmt.Errorf("from address %q: %v: %w", m.From, err, ErrPermanent)
	}
	if err := msg.To(m.To); err != nil {
		return nil, "", fmt.Errorf("to address %q: %v: %w", m.To, err, ErrPermanent)
	}
	msg.SetMessageIDWithValue(id)
	msg.SetDateWithValue(at)
	msg.SetUserAgent(userAgent)
	msg.Subject(unfold(m.Subject))
	names := make([]string, 0, len(m.Headers))
	for name := range m.Headers {
		names = append(names, name)
	}
	sort.Strings(names) // a stable order keeps the output reproducible
	for _, name := range names {
		value := m.Headers[name]
		if !validFieldName(name) || reserved[strings.ToLower(name)] {
			return nil, "", fmt.Errorf("header %q cannot be set: %w", name, ErrPermanent)
		}
		if strings.ContainsAny(value, "\r\n") {
			return nil, "", fmt.Errorf("header %q value contains a line break: %w", name, ErrPermanent)
		}
		msg.SetGenHeader(gomail.Header(name), value)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	return msg, id, nil
}

// validFieldName reports whether name is an RFC 5322 field name: printable
// ASCII without colon or space.
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}
