package esdbserver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus instruments; a nil *metrics records
// nothing.
type metrics struct {
	appends      *prometheus.CounterVec
	events       prometheus.Counter
	commitTime   prometheus.Histogram
	groupSize    prometheus.Histogram
	subs         prometheus.Gauge
	fallbacks    prometheus.Counter
	bytesWritten prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lark_esdb_writes_total",
			Help: "Append, delete and tombstone requests by result (ok, wrong_expected_version, stream_deleted, error).",
		}, []string{"result"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lark_esdb_events_appended_total",
			Help: "Events written to the log (including metadata and tombstone records).",
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lark_esdb_commit_seconds",
			Help:    "Time to commit one group with fsync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lark_esdb_group_commit_events",
			Help:    "Events per group commit (one fsync).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		subs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lark_esdb_active_subscriptions",
			Help: "Open catch-up subscriptions.",
		}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lark_esdb_subscription_fallbacks_total",
			Help: "Times a subscriber fell more than 32 live events behind and returned to catching up from storage.",
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lark_esdb_bytes_written_total",
			Help: "Bytes of committed write batches.",
		}),
	}
	for _, c := range []prometheus.Collector{m.appends, m.events, m.commitTime, m.groupSize, m.subs, m.fallbacks, m.bytesWritten} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) committed(d time.Duration, events, bytes int) {
	if m == nil {
		return
	}
	m.commitTime.Observe(d.Seconds())
	m.groupSize.Observe(float64(events))
	m.events.Add(float64(events))
	m.bytesWritten.Add(float64(bytes))
}

func (m *metrics) commitFailed(n int) {
	if m == nil {
		return
	}
	m.appends.WithLabelValues("error").Add(float64(n))
}

func (m *metrics) append(k resultKind) {
	if m == nil {
		return
	}
	label := "error"
	switch k {
	case resOK:
		label = "ok"
	case resWEV:
		label = "wrong_expected_version"
	case resDeleted:
		label = "stream_deleted"
	}
	m.appends.WithLabelValues(label).Inc()
}

func (m *metrics) subscription(delta float64) {
	if m == nil {
		return
	}
	m.subs.Add(delta)
}

func (m *metrics) fallback() {
	if m == nil {
		return
	}
	m.fallbacks.Inc()
}
