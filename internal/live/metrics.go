package live

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	active          prometheus.Gauge
	deliveries      prometheus.Counter
	gapFills        prometheus.Counter
	cutoffs         prometheus.Counter
	publishes       prometheus.Counter
	publishFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "threadline_subscriptions_active",
			Help: "Subscriptions (messageAdded, conversationEvents, viewerEvents) running on this instance.",
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_subscription_deliveries_total",
			Help: "Messages handed to subscribers (live, replayed or gap-filled).",
		}),
		gapFills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_subscription_gap_fills_total",
			Help: "Gaps in a subscriber's live stream (N then N+2 or later) filled from PostgreSQL.",
		}),
		cutoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_subscription_cutoffs_total",
			Help: "Subscriptions ended because their buffer overflowed (slow consumers); they resume with afterSeq.",
		}),
		publishes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_pubsub_publishes_total",
			Help: "Messages published to Redis after commit, failed ones included.",
		}),
		publishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_pubsub_publish_failures_total",
			Help: "Publishes to Redis that failed; other instances' subscribers catch up on the next message.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.active, m.deliveries, m.gapFills, m.cutoffs, m.publishes, m.publishFailures)
	}
	return m
}
