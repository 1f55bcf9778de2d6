package runs

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the automation side's Prometheus collectors, shared by the
// manager, the sender and the timers. A nil *Metrics records nothing.
type Metrics struct {
	started   prometheus.Counter
	ended     *prometheus.CounterVec
	emails    *prometheus.CounterVec
	timers    prometheus.Counter
	notFired  *prometheus.CounterVec
	sendDelay prometheus.Histogram
}

// NewMetrics registers the collectors with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{Name: "lark_runs_started_total",
			Help: "Automation runs started."}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lark_runs_ended_total",
			Help: "Automation runs ended, by status (completed, failed)."}, []string{"status"}),
		emails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lark_emails_total",
			Help: "Email attempts recorded, by result (sent, failed_temporary, failed_permanent)."}, []string{"result"}),
		timers: prometheus.NewCounter(prometheus.CounterOpts{Name: "lark_timers_fired_total",
			Help: "Delay timers fired."}),
		notFired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lark_trigger_matches_skipped_total",
			Help: "Trigger matches that started no run, by reason (no_contact, already_started)."}, []string{"reason"}),
		sendDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lark_email_send_seconds",
			Help:    "Time to hand one email to the relay.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
	}
	for _, c := range []prometheus.Collector{m.started, m.ended, m.emails, m.timers, m.notFired, m.sendDelay} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register run metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) runStarted() {
	if m != nil {
		m.started.Inc()
	}
}

func (m *Metrics) runEnded(status string) {
	if m != nil {
		m.ended.WithLabelValues(status).Inc()
	}
}

func (m *Metrics) email(result string) {
	if m != nil {
		m.emails.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) timerFired() {
	if m != nil {
		m.timers.Inc()
	}
}

func (m *Metrics) skipped(reason string) {
	if m != nil {
		m.notFired.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) sendTook(seconds float64) {
	if m != nil {
		m.sendDelay.Observe(seconds)
	}
}
