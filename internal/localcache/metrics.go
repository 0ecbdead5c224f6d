package localcache

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	hits, misses, invalidations, barriers, evictions, fillsRefused prometheus.Counter
	flushes                                                        *prometheus.CounterVec
	batchSize                                                      prometheus.Histogram
	tracking                                                       prometheus.Gauge

	// The counters Stats reports.
	nInvalidations, nFlushes, nBarriers atomic.Int64
}

func (m *metrics) flush(reason string) {
	m.flushes.WithLabelValues(reason).Inc()
	m.nFlushes.Add(1)
}

// flushReasons are the values of the reason label of threadline_local_cache_flushes_total.
var flushReasons = []string{"disconnected", "timeout", "unhealthy", "write", "unexpected reply", "flushed"}

func newMetrics(reg prometheus.Registerer, t *Tier) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_local_cache_" + name, Help: help})
	}
	m := &metrics{
		hits:          counter("hits_total", "Lookups answered by the in-process tier, after a barrier, without reading Redis."),
		misses:        counter("misses_total", "Lookups the in-process tier could not answer (absent, or a token it does not hold): they went to Redis."),
		invalidations: counter("invalidations_total", "Keys Redis said changed (client-side caching invalidations) applied to the in-process tier."),
		barriers:      counter("barriers_total", "Barrier round trips (a PING on the tracking connection) completed."),
		evictions:     counter("evictions_total", "Entries dropped from the in-process tier to stay within LOCAL_CACHE_BYTES."),
		fillsRefused:  counter("fills_refused_total", "Values read from Redis not kept in the in-process tier because an invalidation of their key (or a flush) came while they were read."),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_local_cache_flushes_total",
			Help: "Times the in-process tier emptied itself, by reason: tracking lost (disconnected, timeout, unhealthy, write, unexpected reply) or Redis flushed.",
		}, []string{"reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "threadline_local_cache_barrier_batch_size",
			Help:    "Requests released by one barrier round trip.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		tracking: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "threadline_local_cache_tracking",
			Help: "1 while the in-process tier's Redis tracking is established (it holds and answers), else 0.",
		}),
	}
	for _, r := range flushReasons {
		m.flushes.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.misses, m.invalidations, m.barriers, m.evictions, m.fillsRefused, m.flushes, m.batchSize, m.tracking,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "threadline_local_cache_bytes", Help: "Estimated bytes the in-process tier holds (bounded by LOCAL_CACHE_BYTES).",
			}, func() float64 { return float64(t.Stats().Bytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "threadline_local_cache_entries", Help: "Entries the in-process tier holds: tokens and stored responses.",
			}, func() float64 { return float64(t.Stats().Entries) }),
		)
	}
	return m
}
