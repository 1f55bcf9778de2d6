package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	gomail "github.com/wneessen/go-mail"
)

// ErrCircuitOpen is returned (together with ErrTemporary) when the circuit
// breaker is open and Send fails without contacting the relay.
var ErrCircuitOpen = errors.New("smtp: circuit breaker open")

// Config configures a Sender; cmd/lark builds it from the environment.
type Config struct {
	// URL is LARK_SMTP_URL: smtp://user:pass@host:port?tls=none|starttls|tls
	// (see ParseURL).
	URL string
	// Timeout bounds one Send from dial to the end of DATA when ctx has no
	// earlier deadline; default 10 s.
	Timeout time.Duration
	// Registerer receives the lark_smtp_* metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// Logger receives breaker state changes and errors after delivery; nil
	// discards.
	Logger *slog.Logger
	// BreakerFailures is how many temporary failures in a row open the
	// breaker; default 5.
	BreakerFailures uint32
	// BreakerOpenFor is how long the breaker stays open before it lets one
	// probe through; default 5 s.
	BreakerOpenFor time.Duration
	// TLSConfig overrides the TLS settings (for example RootCAs for a relay
	// with a private CA). ServerName defaults to the URL's host.
	TLSConfig *tls.Config
	// HELO is the name sent in EHLO; default the machine's host name.
	HELO string
	// NowFunc stamps the Date header; default time.Now.
	NowFunc func() time.Time
}

// Sender sends messages to one SMTP relay. It opens one connection per
// message (no pooling), wraps every attempt in a circuit breaker, and is safe
// for concurrent use.
type Sender struct {
	ep      Endpoint
	timeout time.Duration
	tls     *tls.Config
	helo    string
	now     func() time.Time
	log     *slog.Logger
	breaker *gobreaker.CircuitBreaker[struct{}]
	metrics *metrics
}

// NewSender checks cfg and builds a Sender; it does not contact the relay.
func NewSender(cfg Config) (*Sender, error) {
	ep, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = 5
	}
	if cfg.BreakerOpenFor <= 0 {
		cfg.BreakerOpenFor = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsConf = cfg.TLSConfig.Clone()
	}
	if tlsConf.ServerName == "" {
		tlsConf.ServerName = ep.Host
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Sender{ep: ep, timeout: cfg.Timeout, tls: tlsConf, helo: cfg.HELO, now: cfg.NowFunc, log: cfg.Logger, metrics: m}
	s.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "smtp",
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.BreakerFailures },
		// A permanent failure is the message's fault, not the relay's.
		IsSuccessful: func(err error) bool { return err == nil || errors.Is(err, ErrPermanent) },
		// The caller giving up (shutdown) says nothing about the relay.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			s.log.Warn("circuit breaker state", "breaker", name, "from", from.String(), "to", to.String())
			m.breakerState(to)
		},
	})
	return s, nil
}

// Send delivers m to the relay. It returns nil once the relay has accepted
// the message (a failure after that, such as a lost QUIT reply, is logged,
// not returned, because a retry would deliver a second copy). Errors wrap
// ErrTemporary or ErrPermanent:
//
//   - permanent: an invalid message (bad Message-ID, address or header), or
//     a 5xx reply to MAIL FROM, RCPT TO or DATA;
//   - temporary: a network failure, a timeout or cancelled ctx, any 4xx
//     reply, a 5xx reply before MAIL FROM (greeting, EHLO, STARTTLS, AUTH:
//     those concern our relay set-up, not the message, so the message keeps
//     its chance once the relay is fixed), and the breaker being open
//     (ErrCircuitOpen).
func (s *Sender) Send(ctx context.Context, m Message) error {
	start := time.Now()
	msg, id, err := build(m, s.now())
	if err == nil {
		_, err = s.breaker.Execute(func() (struct{}, error) { return struct{}{}, s.deliver(ctx, msg) })
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			err = fmt.Errorf("%w: %w", ErrCircuitOpen, ErrTemporary)
		}
	}
	s.metrics.observe(err, time.Since(start))
	if err != nil {
		return fmt.Errorf("smtp: send %s: %w", m.MessageID, err)
	}
	s.log.Debug("email sent", "message_id", id)
	return nil
}

// deliver runs one SMTP transaction and returns a classified error.
func (s *Sender) deliver(ctx context.Context, msg *gomail.Msg) error {
	timeout := s.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if err := ctx.Err(); err != nil || timeout <= 0 {
		return fmt.Errorf("%w: %w", context.Cause(ctx), ErrTemporary)
	}
	opts := []gomail.Option{
		gomail.WithPort(s.ep.Port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(s.tls),
	}
	var stops []func() bool
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	opts = append(opts, gomail.WithDialContextFunc(s.dialFunc(ctx, &stops)))
	switch s.ep.TLS {
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL()) // dialFunc does the handshake
	}
	if s.ep.Username != "" {
		opts = append(opts, gomail.WithUsername(s.ep.Username), gomail.WithPassword(s.ep.Password))
		if s.ep.TLS == TLSNone {
			// The operator chose plain text; honour it rather than refuse.
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlainNoEnc))
		} else {
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover))
		}
	}
	if s.helo != "" {
		opts = append(opts, gomail.WithHELO(s.helo))
	}
	client, err := gomail.NewClient(s.ep.Host, opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %v: %w", err, ErrPermanent)
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if err != nil && msg.IsDelivered() {
		s.log.Warn("error after the relay accepted the message", "message_id", msg.GetMessageID(), "err", err)
		return nil
	}
	return classify(ctx, err)
}

// dialFunc dials the relay (with TLS for implicit TLS) and ties the
// connection to ctx: go-mail bounds a transaction by its timeout only, so a
// cancelled ctx cuts the connection's deadline short.
// The functions that undo that tie are appended to stops.
func (s *Sender) dialFunc(ctx context.Context, stops *[]func() bool) gomail.DialContextFunc {
	return func(dialCtx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{}
		conn, err := d.DialContext(dialCtx, network, addr)
		if err != nil {
			return nil, err
		}
		if s.ep.TLS == TLSImplicit {
			tc := tls.Client(conn, s.tls)
			if err := tc.HandshakeContext(dialCtx); err != nil {
				_ = conn.Close()
				return nil, err
			}
			conn = tc
		}
		*stops = append(*stops, context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) }))
		return conn, nil
	}
}

// classify maps a go-mail error to ErrTemporary or ErrPermanent (see Send).
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w): %w", context.Cause(ctx), err, ErrTemporary)
	}
	// The connection deadline is ctx's deadline, and may fire a moment
	// before ctx itself reports it.
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return fmt.Errorf("%w (%w): %w", context.DeadlineExceeded, err, ErrTemporary)
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		code := se.ErrorCode()
		switch {
		case code >= 500 && code < 600 && se.Reason != gomail.ErrConnCheck:
			return fmt.Errorf("%w: %w", err, ErrPermanent)
		case code >= 400 && code < 500:
			return fmt.Errorf("%w: %w", err, ErrTemporary)
		}
	}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 400 && te.Code < 500 {
		return fmt.Errorf("%w: %w", err, ErrTemporary)
	}
	// Network errors, 5xx during set-up and anything unrecognised: the
	// message is not at fault, so give it another chance.
	return fmt.Errorf("%w: %w", err, ErrTemporary)
}
