package smtp

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// metrics are the lark_smtp_* series; a nil *metrics records nothing.
type metrics struct {
	sent    prometheus.Counter
	failed  *prometheus.CounterVec
	latency prometheus.Histogram
	open    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lark_smtp_sent_total",
			Help: "Emails the SMTP relay accepted.",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lark_smtp_failed_total",
			Help: "Email sends that failed, by kind (temporary, permanent, circuit_open).",
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lark_smtp_send_seconds",
			Help:    "Time of one Send, from dial to the relay's reply to DATA.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lark_smtp_circuit_open",
			Help: "1 while the SMTP circuit breaker is open or half-open, else 0.",
		}),
	}
	for _, c := range []prometheus.Collector{m.sent, m.failed, m.latency, m.open} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("smtp: register metrics: %w", err)
		}
	}
	for _, kind := range []string{"temporary", "permanent", "circuit_open"} {
		m.failed.WithLabelValues(kind)
	}
	return m, nil
}

func (m *metrics) observe(err error, d time.Duration) {
	if m == nil {
		return
	}
	switch {
	case err == nil:
		m.sent.Inc()
		m.latency.Observe(d.Seconds())
	case errors.Is(err, ErrCircuitOpen):
		m.failed.WithLabelValues("circuit_open").Inc()
	case errors.Is(err, ErrPermanent):
		m.failed.WithLabelValues("permanent").Inc()
		m.latency.Observe(d.Seconds())
	default:
		m.failed.WithLabelValues("temporary").Inc()
		m.latency.Observe(d.Seconds())
	}
}

func (m *metrics) breakerState(s gobreaker.State) {
	if m == nil {
		return
	}
	if s == gobreaker.StateClosed {
		m.open.Set(0)
	} else {
		m.open.Set(1)
	}
}
