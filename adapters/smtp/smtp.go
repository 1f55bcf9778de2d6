// Package smtp is Lark's outgoing-mail adapter: it turns one rendered email
// (a Message) into an RFC 5322 message and hands it to the configured SMTP
// relay (Sender) or, when no relay is configured, writes it as an .eml file
// (FileSender). The email-sender worker in commands/ calls it at least once
// per queued email; what makes that safe is the Message-ID, which the worker
// derives from the run and node and which this package writes unchanged, so a
// retry after a crash carries the same id. Deduplicating two deliveries with
// the same id is the receiver's business (many mail stores and mailpit's
// --ignore-duplicate-ids do it); the guarantee here is only the stable id.
//
// Errors from Send wrap exactly one of ErrTemporary (a retry may succeed:
// network failures, timeouts, SMTP 4xx replies, an open circuit breaker) or
// ErrPermanent (a retry cannot succeed: SMTP 5xx replies such as an unknown
// recipient, an invalid message).
package smtp

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrTemporary marks a failure that a later retry of the same message may
// overcome: the relay is unreachable or slow, answered 4xx, or the circuit
// breaker is open.
var ErrTemporary = errors.New("smtp: temporary failure")

// ErrPermanent marks a failure that retrying the same message cannot fix: the
// relay answered 5xx (unknown recipient, rejected sender, policy) or the
// message itself is invalid.
var ErrPermanent = errors.New("smtp: permanent failure")

// Message is one rendered email.
//
// MessageID is "id-left@id-right" as in RFC 5322 §3.6.4, given with or
// without the surrounding angle brackets; the header is always written as
// "<id-left@id-right>". It must be stable for the email (the worker derives
// it from run and node) so that a retry reuses it byte for byte. Body is sent
// as text/plain in UTF-8 (quoted-printable); HTML bodies are not detected or
// converted. Headers adds extra header fields (for example "X-Lark-Run");
// the structural ones (From, To, Subject, Message-ID, Date, MIME-Version,
// Content-*) cannot be set through it.
type Message struct {
	MessageID string
	From      string
	To        string
	Subject   string
	Body      string
	Headers   map[string]string
}

// TLSMode is how a Sender secures its connection to the relay.
type TLSMode string

// TLS modes accepted in the tls= query parameter of LARK_SMTP_URL.
const (
	// TLSNone speaks plain SMTP (a local relay or a test server).
	TLSNone TLSMode = "none"
	// TLSStartTLS requires STARTTLS on a plain connection (usually port 587).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit opens a TLS connection from the start (usually port 465).
	TLSImplicit TLSMode = "tls"
)

// Endpoint is a parsed LARK_SMTP_URL.
type Endpoint struct {
	Host     string
	Port     int
	Username string
	Password string
	TLS      TLSMode
}

// ParseURL parses smtp://user:pass@host:port?tls=none|starttls|tls. The
// user-info part is optional (no authentication without it); the port
// defaults to 25 for none, 587 for starttls and 465 for tls; tls defaults to
// starttls, so that a URL without it never sends credentials in clear text.
// The scheme smtps:// is accepted as a synonym for tls=tls.
func ParseURL(raw string) (Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, fmt.Errorf("smtp: parse url: %w", err)
	}
	var ep Endpoint
	switch u.Scheme {
	case "smtp":
		ep.TLS = TLSStartTLS
	case "smtps":
		ep.TLS = TLSImplicit
	default:
		return Endpoint{}, fmt.Errorf("smtp: url scheme %q: want smtp or smtps", u.Scheme)
	}
	if mode := u.Query().Get("tls"); mode != "" {
		switch TLSMode(strings.ToLower(mode)) {
		case TLSNone, TLSStartTLS, TLSImplicit:
			ep.TLS = TLSMode(strings.ToLower(mode))
		default:
			return Endpoint{}, fmt.Errorf("smtp: url tls=%q: want none, starttls or tls", mode)
		}
	}
	ep.Host = u.Hostname()
	if ep.Host == "" {
		return Endpoint{}, errors.New("smtp: url has no host")
	}
	if p := u.Port(); p != "" {
		ep.Port, err = strconv.Atoi(p)
		if err != nil || ep.Port < 1 || ep.Port > 65535 {
			return Endpoint{}, fmt.Errorf("smtp: url port %q: want 1-65535", p)
		}
	} else {
		ep.Port = map[TLSMode]int{TLSNone: 25, TLSStartTLS: 587, TLSImplicit: 465}[ep.TLS]
	}
	if u.User != nil {
		ep.Username = u.User.Username()
		ep.Password, _ = u.User.Password()
	}
	return ep, nil
}
