// Package metrics holds Threadline's own Prometheus metrics: GraphQL operations and errors, SQL
// statements, the pgx pool, dataloader batches, HTTP requests and rate-limited requests.
//
// New registers them on a prometheus.Registerer (the server's registry, or a test's own), and the
// returned *Metrics hands out the hooks that feed them:
//
//   - GraphQL: a gqlgen extension for graph.HandlerConfig.Metrics;
//   - ObserveStatement: a db.StatementObserver for db.Tracer;
//   - ObserveBatch: loader.Config.OnBatch;
//   - HTTP: middleware for httpapi.Config.Instrument;
//   - RateLimited: the counter the rate limiter increments;
//   - ObservePostCommit: chat.ServiceConfig.Observe (mutations that answered before their
//     post-commit steps finished);
//   - NewPoolCollector: the pgxpool statistics, read at scrape time.
//
// Other packages register their own metrics (the history cache, live subscriptions, Pub/Sub) on
// the same registry; ops/README.md lists every metric with what it means.
//
// # Label cardinality
//
// Every label has a bounded set of values. GraphQL operation names are chosen by clients, so
// they are kept only when they look like GraphQL names of at most 64 characters and, past the
// names given in Options.KnownOperations, only for the first Options.MaxOperationNames distinct
// names the process sees; every other name is reported as "other", and an operation without a
// name as "anonymous". Error codes are the public codes of package apperr (anything else is
// reported as INTERNAL_SERVER_ERROR, which is what the client is told). SQL statements are
// labelled with their sqlc query name (db.StatementName), HTTP requests with the route pattern
// that served them, dataloader batches with the loader's name.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/defaults"
)

// Options tune the metrics. The zero value is usable.
type Options struct {
	// KnownOperations are GraphQL operation names always reported as themselves (the names the
	// known clients use). They do not count against MaxOperationNames.
	KnownOperations []string
	// MaxOperationNames caps how many other distinct operation names get a label value of their
	// own; the rest are reported as "other". Default DefaultMaxOperationNames.
	MaxOperationNames int
}

// DefaultMaxOperationNames is Options.MaxOperationNames when unset.
const DefaultMaxOperationNames = 100

// The label values that stand for operation names not reported as themselves.
const (
	OperationAnonymous = "anonymous"
	OperationOther     = "other"
)

// Metrics are Threadline's own metrics. Its methods are safe for concurrent use.
type Metrics struct {
	operations        *prometheus.CounterVec
	operationDuration *prometheus.HistogramVec
	graphqlErrors     *prometheus.CounterVec
	statements        *prometheus.CounterVec
	statementDuration *prometheus.HistogramVec
	batchSize         *prometheus.HistogramVec
	httpRequests      *prometheus.CounterVec
	httpDuration      *prometheus.HistogramVec
	rateLimited       prometheus.Counter
	rateLimitFailOpen prometheus.Counter
	postCommitLate    prometheus.Counter
	postCommitRunning prometheus.Gauge

	names *nameSet
}

// Latency buckets, in seconds: from a cached page (about a millisecond) to the request timeout.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// SQL buckets, in seconds: an index lookup through PgBouncer takes a fraction of a millisecond.
var sqlBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Batch-size buckets: loader.DefaultMaxBatch is 100.
var batchBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200}

// publicCodes are the values of the code label of threadline_graphql_errors_total.
var publicCodes = []apperr.Code{
	apperr.Unauthenticated, apperr.NotFound, apperr.Forbidden, apperr.BadUserInput, apperr.RateLimited,
	apperr.ComplexityLimitExceeded, apperr.PersistedQueryNotFound, apperr.PositionExpired, apperr.ServiceUnavailable, apperr.Internal,
}

// New creates the metrics and registers them on reg. It panics if one is already registered
// there (a wiring bug), like prometheus.MustRegister.
func New(reg prometheus.Registerer, opts Options) *Metrics {
	opts.MaxOperationNames = defaults.Positive(opts.MaxOperationNames, DefaultMaxOperationNames)
	m := &Metrics{
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_graphql_operations_total",
			Help: "GraphQL operations executed, by operation name and type (query, mutation, subscription; unknown when the document did not parse). Queries and mutations are counted when their response is written, subscriptions when they start.",
		}, []string{"operation", "type"}),
		operationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "threadline_graphql_operation_duration_seconds",
			Help:    "Time from the start of a GraphQL request to its response, for queries and mutations (subscriptions are not timed), by operation name and type.",
			Buckets: latencyBuckets,
		}, []string{"operation", "type"}),
		graphqlErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_graphql_errors_total",
			Help: "GraphQL responses (subscription events included) carrying at least one error with this public code (extensions.code).",
		}, []string{"code"}),
		statements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_sql_statements_total",
			Help: "SQL statements run through the pgx pool, by sqlc query name (begin, commit, rollback, other for the rest).",
		}, []string{"query"}),
		statementDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "threadline_sql_statement_duration_seconds",
			Help:    "Duration of SQL statements run through the pgx pool, by sqlc query name.",
			Buckets: sqlBuckets,
		}, []string{"query"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "threadline_dataloader_batch_size",
			Help:    "Keys per dataloader batch (one store call each), by loader.",
			Buckets: batchBuckets,
		}, []string{"loader"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "threadline_http_request_duration_seconds",
			Help:    "Duration of HTTP requests by route pattern (WebSocket connections and event streams are not timed).",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_rate_limited_total",
			Help: "Requests refused by the rate limiter (RATE_LIMITED).",
		}),
		rateLimitFailOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_rate_limit_fail_open_total",
			Help: "Requests let through unchecked because the rate limiter could not reach Redis (it fails open).",
		}),
		postCommitLate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_postcommit_late_total",
			Help: "Mutations that answered before their post-commit steps (cache token moves, Pub/Sub publish) had finished: Redis slow or down; the steps went on in the background.",
		}),
		postCommitRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "threadline_postcommit_running",
			Help: "Post-commit steps of mutations that have already answered, still running in the background.",
		}),
		names: newNameSet(opts.KnownOperations, opts.MaxOperationNames),
	}
	reg.MustRegister(m.operations, m.operationDuration, m.graphqlErrors, m.statements, m.statementDuration,
		m.batchSize, m.httpRequests, m.httpDuration, m.rateLimited, m.rateLimitFailOpen, m.postCommitLate, m.postCommitRunning)
	// Every public code is exported from the start, at zero, so that ratios and alerts over it
	// have a series to work with before the first error.
	for _, c := range publicCodes {
		m.graphqlErrors.WithLabelValues(string(c))
	}
	return m
}

// ObserveStatement records one SQL statement. It is a db.StatementObserver.
func (m *Metrics) ObserveStatement(_ context.Context, name string, took time.Duration, _ error) {
	m.statements.WithLabelValues(name).Inc()
	m.statementDuration.WithLabelValues(name).Observe(took.Seconds())
}

// ObserveBatch records the size of one dataloader batch. It is loader.Config.OnBatch.
func (m *Metrics) ObserveBatch(loader string, size int) {
	m.batchSize.WithLabelValues(loader).Observe(float64(size))
}

// RateLimited is the counter of requests the rate limiter refused.
func (m *Metrics) RateLimited() prometheus.Counter { return m.rateLimited }

// RateLimitFailOpen is the counter of requests let through because Redis could not answer the
// rate limiter.
func (m *Metrics) RateLimitFailOpen() prometheus.Counter { return m.rateLimitFailOpen }

// ObservePostCommit is chat.ServiceConfig.Observe: +1 when a mutation answers before its
// post-commit steps have finished, -1 when they have.
func (m *Metrics) ObservePostCommit(delta int) {
	if delta > 0 {
		m.postCommitLate.Inc()
	}
	m.postCommitRunning.Add(float64(delta))
}

// nameSet decides which operation names are label values of their own.
type nameSet struct {
	mu    sync.RWMutex
	names map[string]bool // true: known (does not count against max)
	added int             // names added as seen
	max   int
}

func newNameSet(known []string, max int) *nameSet {
	s := &nameSet{names: make(map[string]bool, len(known)), max: max}
	for _, n := range known {
		if validName(n) {
			s.names[n] = true
		}
	}
	return s
}

// label returns the label value for an operation name.
func (s *nameSet) label(name string) string {
	if name == "" {
		return OperationAnonymous
	}
	if !validName(name) {
		return OperationOther
	}
	s.mu.RLock()
	_, ok := s.names[name]
	s.mu.RUnlock()
	if ok {
		return name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.names[name]; ok {
		return name
	}
	if s.added >= s.max {
		return OperationOther
	}
	s.names[name] = false
	s.added++
	return name
}

// validName reports whether name matches ^[A-Za-z_][A-Za-z0-9_]{0,63}$.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
