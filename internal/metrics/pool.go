package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolStats is what the pool collector reads: the methods of *pgxpool.Stat it exports.
type PoolStats interface {
	AcquiredConns() int32
	IdleConns() int32
	TotalConns() int32
	MaxConns() int32
	AcquireCount() int64
	EmptyAcquireCount() int64
	EmptyAcquireWaitTime() time.Duration
}

// NewPoolCollector returns a collector of the pgx pool's statistics, read from stats at every
// scrape. With a *pgxpool.Pool: NewPoolCollector(func() PoolStats { return pool.Stat() }).
func NewPoolCollector(stats func() PoolStats) prometheus.Collector {
	return &poolCollector{stats: stats}
}

type poolCollector struct {
	stats func() PoolStats
}

var (
	poolAcquired = prometheus.NewDesc("threadline_db_pool_acquired_conns",
		"Connections of the pgx pool currently lent out to a statement or transaction.", nil, nil)
	poolIdle = prometheus.NewDesc("threadline_db_pool_idle_conns",
		"Idle connections in the pgx pool.", nil, nil)
	poolTotal = prometheus.NewDesc("threadline_db_pool_total_conns",
		"Connections in the pgx pool: acquired, idle and being opened.", nil, nil)
	poolMax = prometheus.NewDesc("threadline_db_pool_max_conns",
		"Maximum size of the pgx pool (DB_MAX_CONNS).", nil, nil)
	poolAcquires = prometheus.NewDesc("threadline_db_pool_acquires_total",
		"Successful connection acquires from the pgx pool.", nil, nil)
	poolEmptyAcquires = prometheus.NewDesc("threadline_db_pool_empty_acquires_total",
		"Acquires that had to wait because the pgx pool had no idle connection.", nil, nil)
	poolWait = prometheus.NewDesc("threadline_db_pool_acquire_wait_seconds_total",
		"Time spent waiting for a connection by acquires that found the pgx pool empty.", nil, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolAcquired, poolIdle, poolTotal, poolMax, poolAcquires, poolEmptyAcquires, poolWait} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(poolAcquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(poolIdle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolEmptyAcquires, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWait, prometheus.CounterValue, s.EmptyAcquireWaitTime().Seconds())
}
