package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/internal/admission"
	"github.com/threadline/threadline/internal/testenv"
)

// Overload sheds instead of collapsing. With both caches off (every request executes and reads
// PostgreSQL through PgBouncer), the server's capacity is measured in a closed model (32
// connections); then twice that is offered in an open model for 15 s. The admission limit keeps
// the successful answers per second at 80% of capacity or more and the p99 of all answers,
// refusals included, at 500 ms or less; every refusal is a 503 with Retry-After.
//
// The server, PostgreSQL, PgBouncer and Redis run on half of the CPUs and the load generator on
// the other half (isolateCPUs): sharing the two cores, the generator's own cost, twice as many
// requests in the open phase as in the closed one, came out of the server's share and the served
// rate measured 68-98% of capacity from one run to the next (median 80%). The capacity is
// measured before and after the open phase and their mean is the reference: the machine's speed
// drifts over tens of seconds (consecutive 5 s closed-model windows: 2,415 to 3,098 req/s).
//
// This is a behaviour under load, not a benchmark: `make bench` reports the same at 2x and 4x on
// shared cores (the "overload" rows).
func TestOverloadSheds(t *testing.T) {
	testenv.SkipShort(t, "a load test")
	database := testenv.NewDatabase(t)
	apptest.Seed(t, database)
	env := apptest.Env(t, database, testenv.NewRedis(t))
	env["CACHE_ENABLED"], env["RATE_LIMIT_DISABLED"], env["LOG_LEVEL"] = "false", "true", "error"
	env["APP_ENV"] = "production"
	p := apptest.StartProcess(t, env)
	addr := strings.TrimPrefix(p.URL, "http://")
	isolateCPUs(t)

	token := apptest.Token(t, apptest.Secret, 1, time.Hour)
	var reqs []Request
	for _, id := range p.Client(1).ConversationIDs(t, 10, 1) {
		reqs = append(reqs, NewRequest(addr, "/query", token, GraphQLBody(
			`query Page($id: ID!) { conversation(id: $id) { messages(limit: 50) { items { id seq body createdAt sender { id name } } hasMore } } }`,
			map[string]any{"id": id})))
	}
	next := func(w, i int) Request { return reqs[(w+i)%len(reqs)] }
	ctx := context.Background()
	measure := func() float64 {
		closed, err := Closed(ctx, addr, 32, 5*time.Second, next)
		if err != nil {
			t.Fatal(err)
		}
		if closed.Errors-closed.Refused > 0 {
			t.Fatalf("closed model: %d errors besides refusals: %s", closed.Errors-closed.Refused, closed.FirstError)
		}
		return float64(closed.Requests-closed.Errors) / closed.Elapsed.Seconds()
	}

	// A warm-up of 5 s: after one of 2 s the capacity measured next was up to 31% below the one
	// measured after the open phase (806 against 1,175 req/s), so the load offered as twice the
	// capacity was less than that.
	if _, err := Closed(ctx, addr, 32, 5*time.Second, next); err != nil {
		t.Fatal(err)
	}
	before := measure()
	rate := 2 * before
	// Enough connections for every request the server may hold at once: those executing and
	// those waiting in the admission queue (up to MaxWait, 50 ms, before their 503). With 256, at
	// twice a capacity near 3,000 req/s the refusals waiting alone took about 160 of them, the
	// generator's connections became the bottleneck, its backlog grew for the whole run and
	// p99 passed 500 ms.
	open, err := Open(ctx, addr, rate, 15*time.Second, admission.DefaultMaxQueue+256, next)
	if err != nil {
		t.Fatal(err)
	}
	after := measure()
	capacity := (before + after) / 2
	succeeded := float64(open.Requests-open.Errors) / open.Elapsed.Seconds()
	p99 := open.Quantile(99)
	t.Logf("capacity %.0f req/s (closed 32: %.0f before, %.0f after); offered %.0f req/s (%.1fx): %.0f req/s answered (%.0f%% of capacity), %d refused with 503, %d other errors, p50 %s p99 %s max %s",
		capacity, before, after, rate, rate/capacity, succeeded, 100*succeeded/capacity, open.Refused, open.Errors-open.Refused,
		open.Quantile(50), p99, open.Max())
	if other := open.Errors - open.Refused; other > 0 {
		t.Errorf("%d answers were neither successes nor 503 with Retry-After; first: %s", other, open.FirstError)
	}
	if succeeded < 0.8*capacity {
		t.Errorf("at twice the capacity, %.0f req/s answered: under 80%% of the capacity (%.0f req/s)", succeeded, capacity)
	}
	if p99 > 500*time.Millisecond {
		t.Errorf("at twice the capacity, p99 of all answers %s: over 500 ms", p99)
	}
}
