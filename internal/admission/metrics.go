package admission

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	admitted, refusedFull, refusedTimeout, canceled prometheus.Counter
	wait                                            prometheus.Histogram
}

// waitBuckets spans the queue's range: from no wait to well past DefaultMaxWait.
var waitBuckets = []float64{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

func newMetrics(reg prometheus.Registerer, l *Limiter) metrics {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "threadline_admission_refused_total",
		Help: "Requests refused with 503 by the admission limit, by reason (queue_full, wait_timeout).",
	}, []string{"reason"})
	m := metrics{
		admitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_admission_admitted_total", Help: "Operations admitted by the admission limit.",
		}),
		refusedFull:    refused.WithLabelValues(string(QueueFull)),
		refusedTimeout: refused.WithLabelValues(string(WaitTimeout)),
		canceled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_admission_canceled_total", Help: "Requests whose context ended while they waited for an admission slot.",
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "threadline_admission_queue_wait_seconds", Help: "Time admitted operations waited for a slot (0 when one was free).",
			Buckets: waitBuckets,
		}),
	}
	if reg != nil {
		stat := func(name, help string, f func(Stats) int) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f(l.Stats())) })
		}
		reg.MustRegister(m.admitted, refused, m.canceled, m.wait,
			stat("threadline_admission_limit", "Current adaptive limit on concurrently executing operations.", func(s Stats) int { return s.Limit }),
			stat("threadline_admission_in_flight", "Operations executing under the admission limit.", func(s Stats) int { return s.InFlight }),
			stat("threadline_admission_queued", "Requests waiting for an admission slot.", func(s Stats) int { return s.Queued }),
		)
	}
	return m
}
