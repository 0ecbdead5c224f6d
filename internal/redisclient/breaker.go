package redisclient

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// Breaker is the circuit breaker in front of Redis (sony/gobreaker). After FailureThreshold
// consecutive failures it opens: calls fail at once with ErrOpen, and callers skip Redis (reads
// go to PostgreSQL). After OpenTimeout it lets one call through; a success closes it again, so
// caching resumes by itself when Redis is back.
//
// Each call also gets a short deadline (CallTimeout), so a hung Redis costs a request at most that.
type Breaker struct {
	cb      *gobreaker.CircuitBreaker[struct{}]
	timeout time.Duration
}

// Defaults of BreakerConfig.
const (
	DefaultFailureThreshold = 5
	DefaultOpenTimeout      = 2 * time.Second
	DefaultCallTimeout      = 100 * time.Millisecond
)

// BreakerConfig tunes a Breaker. Zero values take the defaults.
type BreakerConfig struct {
	FailureThreshold uint32        // consecutive failures that open the breaker
	OpenTimeout      time.Duration // how long it stays open before a probe
	CallTimeout      time.Duration // deadline of each call
	Log              *slog.Logger
	Registerer       prometheus.Registerer // for threadline_cache_breaker_state; may be nil
}

// ErrOpen is returned while the breaker keeps calls away from Redis.
var ErrOpen = errors.New("redis circuit breaker is open")

// NewBreaker returns a closed Breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	cfg.FailureThreshold = cmp.Or(cfg.FailureThreshold, DefaultFailureThreshold)
	cfg.OpenTimeout = cmp.Or(cfg.OpenTimeout, DefaultOpenTimeout)
	cfg.CallTimeout = cmp.Or(cfg.CallTimeout, DefaultCallTimeout)
	cfg.Log = cmp.Or(cfg.Log, slog.New(slog.DiscardHandler))
	state := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "threadline_cache_breaker_state",
		Help: "State of the Redis circuit breaker: 0 closed, 1 half-open, 2 open.",
	})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(state)
	}
	b := &Breaker{timeout: cfg.CallTimeout}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.FailureThreshold },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			state.Set(stateValue(to))
			cfg.Log.Warn("redis circuit breaker", "from", from.String(), "to", to.String())
		},
		// A missing key is an answer, not a failure; a caller that gave up is neither.
		IsSuccessful: func(err error) bool { return err == nil || errors.Is(err, redis.Nil) },
		IsExcluded:   func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	return b
}

func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// Do runs fn with the call deadline unless the breaker is open (ErrOpen), and records its outcome.
func (b *Breaker) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	_, err := b.cb.Execute(func() (struct{}, error) {
		callCtx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		return struct{}{}, fn(callCtx)
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return ErrOpen
	}
	return err
}

// Failing reports whether Redis is known to be failing: the breaker is not closed, or the last
// call through it failed.
func (b *Breaker) Failing() bool {
	return b.cb.State() != gobreaker.StateClosed || b.cb.Counts().ConsecutiveFailures > 0
}

// State returns "closed", "half-open" or "open".
func (b *Breaker) State() string { return b.cb.State().String() }
