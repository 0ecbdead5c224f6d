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
	"cmp"
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
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/defaults"
	"github.com/threadline/threadline/internal/redisclient"
)

// Defaults of Config.Rate and Config.Burst, and of the conversation-creation budget (per
// minute).
const (
	DefaultRate        = 50  // requests per second, sustained
	DefaultBurst       = 100 // requests at once
	DefaultCreateRate  = 10  // conversations per minute, sustained
	DefaultCreateBurst = 5   // conversations at once
)

// Config configures the limiter.
type Config struct {
	Redis   redis.UniversalClient
	Breaker *redisclient.Breaker // Redis calls go through it; a refused or failed call fails open
	Rate    int                  // requests per Period per client (DefaultRate when 0)
	Burst   int                  // requests a client may send at once (DefaultBurst when 0)
	Period  time.Duration        // default one second
	// Name tells this budget's keys from other budgets' (the conversation-creation budget is
	// "create"); "" for the request budget.
	Name string
	// Limited counts refused requests, FailOpen requests let through because Redis could not
	// answer. Either may be nil.
	Limited, FailOpen prometheus.Counter
}

// Limiter charges requests to their client's budget in Redis.
type Limiter struct {
	cfg     Config
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
}

// New returns a Limiter.
func New(cfg Config) *Limiter {
	cfg.Rate = defaults.Positive(cfg.Rate, DefaultRate)
	cfg.Burst = defaults.Positive(cfg.Burst, DefaultBurst)
	return &Limiter{
		cfg: cfg, limiter: redis_rate.NewLimiter(cfg.Redis),
		limit: redis_rate.Limit{Rate: cfg.Rate, Burst: cfg.Burst, Period: cmp.Or(cfg.Period, time.Second)},
	}
}

// Decision is the answer to a charge.
type Decision struct {
	Allowed    bool
	Remaining  int           // requests left in the budget (when allowed)
	RetryAfter time.Duration // when a refused request may be tried again
}

// Charge takes n requests from key's budget. When Redis cannot answer it fails open: the
// requests are allowed and counted in FailOpen.
func (l *Limiter) Charge(ctx context.Context, key string, n int) Decision {
	if n <= 0 {
		return Decision{Allowed: true}
	}
	if l.cfg.Name != "" {
		key = l.cfg.Name + ":" + key
	}
	var res *redis_rate.Result
	err := l.cfg.Breaker.Do(ctx, func(ctx context.Context) error {
		var err error
		res, err = l.limiter.AllowN(ctx, key, l.limit, n)
		return err
	})
	if err != nil {
		if l.cfg.FailOpen != nil {
			l.cfg.FailOpen.Inc()
		}
		return Decision{Allowed: true, Remaining: -1}
	}
	if res.Allowed > 0 {
		return Decision{Allowed: true, Remaining: res.Remaining}
	}
	if l.cfg.Limited != nil {
		l.cfg.Limited.Inc()
	}
	return Decision{RetryAfter: res.RetryAfter}
}

// ChargeViewer charges n requests to the viewer of ctx (to nobody when there is none: an
// anonymous operation was charged by its HTTP request). A refusal is the public RATE_LIMITED
// error, with extensions.retryAfter in seconds.
func (l *Limiter) ChargeViewer(ctx context.Context, n int) error {
	id, err := auth.Viewer(ctx)
	if err != nil {
		return nil
	}
	d := l.Charge(ctx, userKey(id), n)
	if d.Allowed {
		return nil
	}
	return Refusal(d.RetryAfter)
}

// ChargeClient charges n requests to the client of ctx: its viewer, or addr (the client's
// address, without port) when it has none, as Middleware charges an HTTP request. A refusal is
// the public RATE_LIMITED error, with extensions.retryAfter in seconds.
func (l *Limiter) ChargeClient(ctx context.Context, addr string, n int) error {
	key := addrKey(addr)
	if id, err := auth.Viewer(ctx); err == nil {
		key = userKey(id)
	}
	d := l.Charge(ctx, key, n)
	if d.Allowed {
		return nil
	}
	return Refusal(d.RetryAfter)
}

// Refusal is the GraphQL error of a request refused for its rate.
func Refusal(retryAfter time.Duration) *gqlerror.Error {
	secs := retrySeconds(retryAfter)
	return &gqlerror.Error{
		Message:    fmt.Sprintf("rate limit exceeded: retry after %d s", secs),
		Extensions: map[string]any{"code": string(apperr.RateLimited), "retryAfter": secs},
	}
}

// Middleware returns the limiting middleware: each HTTP request costs one. It must run after
// authentication: it reads the viewer from the request's context.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := l.Charge(r.Context(), Key(r), 1)
		switch {
		case !d.Allowed:
			refuse(w, d.RetryAfter)
		case d.Remaining >= 0:
			w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
			next.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// Middleware returns the limiting middleware of a new Limiter (see Limiter.Middleware).
func Middleware(cfg Config) func(http.Handler) http.Handler {
	return New(cfg).Middleware
}

func userKey(id int64) string { return "user:" + strconv.FormatInt(id, 10) }

func addrKey(addr string) string { return "ip:" + addr }

func retrySeconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

// Key is the limiter key of r: its viewer's, or its peer address's when anonymous.
func Key(r *http.Request) string {
	if id, err := auth.Viewer(r.Context()); err == nil {
		return userKey(id)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return addrKey(host)
}

// refuse answers 429 with Retry-After and a GraphQL error RATE_LIMITED.
func refuse(w http.ResponseWriter, retryAfter time.Duration) {
	secs := retrySeconds(retryAfter)
	body, _ := json.Marshal(map[string]any{"errors": []any{Refusal(retryAfter)}})
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(secs))
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(body)
}
