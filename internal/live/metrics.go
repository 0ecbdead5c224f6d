package live

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	active          prometheus.Gauge
	deliveries      prometheus.Counter
	gapFills        prometheus.Counter
	cutoffs         prometheus.Counter
	publishes       prometheus.Counter
	publishFailures prometheus.Counter
	executions      prometheus.Counter
	sharedResults   prometheus.Counter
	polls           prometheus.Counter
	pollFailures    prometheus.Counter
	pollCatchUps    prometheus.Counter
	pollDeliveries  prometheus.Counter
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
		executions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_subscription_executions_total",
			Help: "Subscription events executed for a subscriber (its selection resolved and encoded); an execution whose result other subscribers reuse counts once.",
		}),
		sharedResults: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_subscription_shared_results_total",
			Help: "Subscription events sent to a subscriber as the bytes another subscriber's execution made (same event, operation and, when the selection depends on it, viewer).",
		}),
		polls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_live_polls_total",
			Help: "Reads of the newest event_seq of every stream with local subscribers, one statement each (the PostgreSQL poll that delivers what Redis Pub/Sub did not).",
		}),
		pollFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_live_poll_failures_total",
			Help: "Polls whose statement failed (the next one tries again).",
		}),
		pollCatchUps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_live_poll_catchups_total",
			Help: "Streams a poll found behind PostgreSQL (Redis Pub/Sub down, or a publish lost) and made catch up.",
		}),
		pollDeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_live_poll_deliveries_total",
			Help: "Events subscribers handled from PostgreSQL because a poll found their stream behind.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.active, m.deliveries, m.gapFills, m.cutoffs, m.publishes, m.publishFailures, m.executions, m.sharedResults,
			m.polls, m.pollFailures, m.pollCatchUps, m.pollDeliveries)
	}
	return m
}
