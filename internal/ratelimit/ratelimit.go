// Package ratelimit limits the requests of each user (of each client IP address when the request
// is anonymous), shared by every instance through Redis: a GCRA limiter (go-redis/redis_rate)
// whose state is one Redis key per client, rate:user:<id> or rate:ip:<address>.
//
// A refused request gets 429 with Retry-After (whole seconds) and a GraphQL response whose error
// has extensions.code RATE_LIMITED. When Redis cannot answer (down, slow, or its circuit breaker
// open) the limiter fails open: the request is served, and counted in
// threadline_rate_limit_fail_open_total. Limiting stops while Redis is away rather than the
// whole API.
//
// The address is the connection's peer (http.Request.RemoteAddr): behind a proxy or load
// balancer, anonymous clients share the proxy's budget; authenticated ones are counted apart.
package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/redisclient"
)

// Defaults of Config.Rate and Config.Burst.
const (
	DefaultRate  = 50  // requests per second, sustained
	DefaultBurst = 100 // requests at once
)

// Config configures the limiter.
type Config struct {
	Redis   redis.UniversalClient
	Breaker *redisclient.Breaker // Redis calls go through it; a refused or failed call fails open
	Rate    int                  // requests per second per client (DefaultRate when 0)
	Burst   int                  // requests a client may send at once (DefaultBurst when 0)
	// Limited counts refused requests, FailOpen requests let through because Redis could not
	// answer. Either may be nil.
	Limited, FailOpen prometheus.Counter
}

// Middleware returns the limiting middleware. It must run after authentication: it reads the
// viewer from the request's context.
func Middleware(cfg Config) func(http.Handler) http.Handler {
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	limiter := redis_rate.NewLimiter(cfg.Redis)
	limit := redis_rate.Limit{Rate: cfg.Rate, Burst: cfg.Burst, Period: time.Second}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var res *redis_rate.Result
			err := cfg.Breaker.Do(r.Context(), func(ctx context.Context) error {
				var err error
				res, err = limiter.Allow(ctx, Key(r), limit)
				return err
			})
			if err != nil {
				if cfg.FailOpen != nil {
					cfg.FailOpen.Inc()
				}
				next.ServeHTTP(w, r)
				return
			}
			if res.Allowed > 0 {
				w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(res.Remaining))
				next.ServeHTTP(w, r)
				return
			}
			if cfg.Limited != nil {
				cfg.Limited.Inc()
			}
			refuse(w, res.RetryAfter)
		})
	}
}

// Key is the limiter key of r: its viewer's, or its peer address's when anonymous.
func Key(r *http.Request) string {
	if id, err := auth.Viewer(r.Context()); err == nil {
		return "user:" + strconv.FormatInt(id, 10)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// refuse answers 429 with Retry-After and a GraphQL error RATE_LIMITED.
func refuse(w http.ResponseWriter, retryAfter time.Duration) {
	secs := max(1, int(math.Ceil(retryAfter.Seconds())))
	body, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{
		"message":    fmt.Sprintf("rate limit exceeded: retry after %d s", secs),
		"extensions": map[string]any{"code": string(apperr.RateLimited), "retryAfter": secs},
	}}})
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(secs))
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(body)
}
