package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/graph/client"
	"github.com/threadline/threadline/internal/admission"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/ops/loadtest"
)

// timelineDepths are the depths (messages below the newest of the long conversation) at which
// historyAround (25 each side), timeline forward (first 50 after the message there) and timeline
// backward (last 50 before it) are measured: near the top, in the middle and near the oldest.
var timelineDepths = []int64{100, 5000, 9900}

// timelineScenario names the row of kind ("historyAround", "timeline forward", "timeline
// backward") at depth.
func timelineScenario(kind string, depth int64) string {
	return fmt.Sprintf("deep pagination: %s at depth %d", kind, depth)
}

// row is one line of the report's table.
type row struct {
	Config   string // server configuration
	Scenario string
	Model    string // "closed 32", "open 1000/s", ...
	Res      loadtest.Result
	// Deltas over the run, from /health/cache and /metrics; negative when not available.
	HistHit, RespHit float64
	SQLPerReq        float64
	CacheErrors      int64 // history and response cache errors (Redis timeouts, failures) over the run
	PgbActive        int   // PgBouncer server connections active (max sampled), -1 unknown
	PgbTotal         int   // PgBouncer server connections open (max sampled)
	// ServerCPU is the server process's CPU time per request (µs); Others the share of the
	// machine's CPU time used by neither the server nor the generator during the run
	// (PostgreSQL, PgBouncer, Redis, and anything else running). Negative when unknown.
	ServerCPU, Others float64
	Note              string
}

type bench struct {
	opts  options
	env   map[string]string
	fx    fixture
	token string
	rows  []row
	mu    sync.Mutex // guards profiles
	// profiles: scenario -> top of the CPU profile
	profiles []profile
	fanout   string
	typing   string // BenchmarkTypingAcrossInstances's lines
	replica  string // the read replica's share of the reads it may serve, or why it was not run
	took     time.Duration
	cpuModel string
	// loadBefore and loadAfter are /proc/loadavg at the start and the end: other work on the
	// machine shows there.
	loadBefore, loadAfter string

	// The search scenarios' viewer and its token.
	sfx         searchFixture
	searchToken string
}

type profile struct {
	Scenario, Top, File string
}

// durations, by mode.
func (b *bench) dur(full, quick time.Duration) time.Duration {
	if b.opts.quick {
		return quick
	}
	return full
}

func (b *bench) req(s *server, query string, vars map[string]any) loadtest.Request {
	return loadtest.NewRequest(s.addr, "/query", b.token, loadtest.GraphQLBody(query, vars))
}

// pageReq is the target page: messages(limit: 50, offset: 0) with senders, of one conversation.
func (b *bench) pageReq(s *server, conv string, offset int) loadtest.Request {
	return b.req(s, client.MessagesPage_Operation, map[string]any{"conversationId": conv, "limit": 50, "offset": offset})
}

func (b *bench) serverEnv(extra ...string) []string {
	return environ(b.env, append([]string{"APP_ENV=production", "JWT_SECRET=" + secret, "LOG_LEVEL=warn",
		"RATE_LIMIT_DISABLED=true"}, extra...)...)
}

func (b *bench) runAll(ctx context.Context) error {
	b.cpuModel = cpuModel()
	b.loadBefore = loadAvg()
	defer func() { b.loadAfter = loadAvg() }()
	quick := b.opts.quick
	pageConv := b.fx.convs[0]
	if b.opts.only == "search" {
		return b.withServer(ctx, "cache off", b.serverEnv("CACHE_ENABLED=false"), false, func(s *server) error {
			b.searchLoads(ctx, s)
			return nil
		})
	}
	if b.opts.only == "mix" {
		return b.mixOnly(ctx, pageConv)
	}

	// 1. Cache on: the full stack.
	if err := b.withServer(ctx, "cache on", b.serverEnv("CACHE_ENABLED=true", "RESPONSE_CACHE_ENABLED=true"), true, func(s *server) error {
		page := b.pageReq(s, pageConv, 0)
		b.warm(ctx, s, page)
		closed := b.pageLoads(ctx, s, "cached page", page)
		if closed.Res.RPS() < 5000 || !quick { // what a hit still costs
			b.profile(ctx, s, "cached page", page)
		}
		b.measure(ctx, s, "dataloader fan-in: 20 conversations' first pages", "closed 32", func() (loadtest.Result, error) {
			q := b.req(s, fanInQuery, map[string]any{"first": 20, "limit": 50})
			return loadtest.Closed(ctx, s.addr, 32, b.dur(8*time.Second, 2*time.Second), loadtest.Fixed(q))
		})
		b.measure(ctx, s, "95/5 read/write, Zipf over 1000 conversations", "closed 32", func() (loadtest.Result, error) {
			return loadtest.Closed(ctx, s.addr, 32, b.dur(10*time.Second, 3*time.Second), b.mix(s, 0.05))
		})
		b.measure(ctx, s, "95/5 read/write, Zipf over 1000 conversations", "open 1000/s", func() (loadtest.Result, error) {
			return loadtest.Open(ctx, s.addr, 1000, b.dur(8*time.Second, 3*time.Second), 256, b.mix(s, 0.05))
		})
		b.mixParts(ctx, s, b.dur(10*time.Second, 3*time.Second))
		if mine, err := ownMessages(ctx, b.env["DATABASE_DIRECT_URL"], b.fx.convs); err != nil {
			logf("edit-heavy mix: %v", err)
		} else {
			b.measure(ctx, s, "edit-heavy 80/10/10: reads, sends, edits and reactions, Zipf", "closed 32", func() (loadtest.Result, error) {
				return loadtest.Closed(ctx, s.addr, 32, b.dur(10*time.Second, 3*time.Second), b.editMix(s, mine))
			})
		}
		n, interval, d := 10000, 10*time.Second, 25*time.Second
		if quick {
			n, interval, d = 1000, 2*time.Second, 5*time.Second
		}
		if lim := fileLimit(); uint64(n)+200 > lim {
			logf("open-file limit %d: %d clients do not fit", lim, n)
			n = int(lim) - 200
		}
		scenario := fmt.Sprintf("%d concurrent keep-alive clients, Zipf reads", n)
		var profiled sync.WaitGroup
		b.measure(ctx, s, scenario, fmt.Sprintf("each 1 per %s", interval), func() (loadtest.Result, error) {
			if !quick { // profiled in the middle of the run, whatever it turns out to be
				profiled.Go(func() { b.capture(ctx, s, scenario, d/2) })
			}
			return loadtest.Clients(ctx, s.addr, n, interval, d, b.mix(s, 0))
		})
		profiled.Wait()
		return b.saveCeilingBody(ctx, s, page)
	}); err != nil {
		return err
	}

	// 1b. Cache on, the response cache's in-process tier off (LOCAL_CACHE_BYTES=0): every hit is
	// a Redis round trip; the hit is still answered before gqlgen.
	if err := b.withServer(ctx, "cache on, local tier off", b.serverEnv("CACHE_ENABLED=true", "RESPONSE_CACHE_ENABLED=true", "LOCAL_CACHE_BYTES=0"), false, func(s *server) error {
		page := b.pageReq(s, pageConv, 0)
		b.warm(ctx, s, page)
		b.pageLoads(ctx, s, "cached page", page)
		return nil
	}); err != nil {
		return err
	}

	// 1c. Cache on, with a streaming replica of the stack's PostgreSQL: the share of the reads
	// that may go to the replica (history-page misses) that it served.
	if replicaURL, err := b.startReplica(ctx); err != nil {
		logf("read replica: %v; its scenario is left out", err)
		b.replica = "not run: the replica did not start (" + err.Error() + ")"
	} else if err := b.withServer(ctx, "cache on, read replica", b.serverEnv("CACHE_ENABLED=true", "RESPONSE_CACHE_ENABLED=true", "DATABASE_REPLICA_URL="+replicaURL), false, func(s *server) error {
		b.warm(ctx, s, b.pageReq(s, pageConv, 0))
		before := b.dbReads(ctx, s)
		b.measure(ctx, s, "95/5 read/write, Zipf over 1000 conversations", "closed 32", func() (loadtest.Result, error) {
			return loadtest.Closed(ctx, s.addr, 32, b.dur(10*time.Second, 3*time.Second), b.mix(s, 0.05))
		})
		b.replica = replicaShare(before, b.dbReads(ctx, s))
		logf("%s: %s", s.name, b.replica)
		return nil
	}); err != nil {
		return err
	}

	// 2. History cache on, response cache off: the page executed by gqlgen, data from Redis.
	if err := b.withServer(ctx, "response cache off", b.serverEnv("CACHE_ENABLED=true", "RESPONSE_CACHE_ENABLED=false"), false, func(s *server) error {
		page := b.pageReq(s, pageConv, 0)
		b.warm(ctx, s, page)
		b.measure(ctx, s, "cached page, executed", "closed 32", func() (loadtest.Result, error) {
			return loadtest.Closed(ctx, s.addr, 32, b.dur(10*time.Second, 3*time.Second), loadtest.Fixed(page))
		})
		if !quick {
			for _, rate := range b.rates() {
				b.measure(ctx, s, "cached page, executed", fmt.Sprintf("open %d/s", rate), func() (loadtest.Result, error) {
					return loadtest.Open(ctx, s.addr, float64(rate), 8*time.Second, 256, loadtest.Fixed(page))
				})
			}
		}
		return nil
	}); err != nil {
		return err
	}

	// 3. Cache off, through PgBouncer: every page from PostgreSQL.
	if err := b.withServer(ctx, "cache off", b.serverEnv("CACHE_ENABLED=false"), true, func(s *server) error {
		page := b.pageReq(s, pageConv, 0)
		b.warm(ctx, s, page)
		closed := b.pageLoads(ctx, s, "page (PgBouncer)", page)
		if closed.Res.RPS() < 2000 && !quick {
			b.profile(ctx, s, "page with cache off", page)
		}
		b.overload(ctx, s, closed, page)
		// Deep pagination on the long conversation: offset against the history cursor.
		for _, depth := range []int64{0, 1000, 10000} {
			off := b.pageReq(s, b.fx.long, int(min(depth, 10000)))
			vars := map[string]any{"conversationId": b.fx.long, "first": 50}
			if depth > 0 {
				vars["before"] = chat.EncodeMessageCursor(b.fx.longSeq - depth + 1)
			}
			cur := b.req(s, client.History_Operation, vars)
			for _, p := range []struct {
				name string
				req  loadtest.Request
			}{{"offset", off}, {"history cursor", cur}} {
				b.measure(ctx, s, fmt.Sprintf("deep pagination: %s at depth %d", p.name, depth), "closed 4", func() (loadtest.Result, error) {
					return loadtest.Closed(ctx, s.addr, 4, b.dur(4*time.Second, time.Second), loadtest.Fixed(p.req))
				})
			}
		}
		// A permalink's window and the timeline's pages at depth: one statement around a seq,
		// whatever its depth.
		for _, depth := range timelineDepths {
			at := chat.EncodeMessageCursor(b.fx.longSeq - depth)
			for _, p := range []struct {
				name string
				req  loadtest.Request
			}{
				{"historyAround", b.req(s, client.HistoryAround_Operation, map[string]any{"conversationId": b.fx.long, "seq": b.fx.longSeq - depth, "before": 25, "after": 25})},
				{"timeline forward", b.req(s, client.Timeline_Operation, map[string]any{"conversationId": b.fx.long, "first": 50, "after": at})},
				{"timeline backward", b.req(s, client.Timeline_Operation, map[string]any{"conversationId": b.fx.long, "last": 50, "before": at})},
			} {
				if depth == timelineDepths[0] {
					b.warm(ctx, s, p.req) // the first of each kind is not to pay for anything cold
				}
				b.measure(ctx, s, timelineScenario(p.name, depth), "closed 4", func() (loadtest.Result, error) {
					return loadtest.Closed(ctx, s.addr, 4, b.dur(4*time.Second, time.Second), loadtest.Fixed(p.req))
				})
			}
		}
		// Full-text search: no cache serves it (the response cache is off here, as it is for
		// any search over all the viewer's conversations).
		b.searchLoads(ctx, s)
		return nil
	}); err != nil {
		return err
	}

	// 4. Cache off, straight to PostgreSQL (no PgBouncer).
	if err := b.withServer(ctx, "cache off, direct", b.serverEnv("CACHE_ENABLED=false", "DATABASE_URL="+b.env["DATABASE_DIRECT_URL"]), false, func(s *server) error {
		page := b.pageReq(s, pageConv, 0)
		b.warm(ctx, s, page)
		b.measure(ctx, s, "page (direct to PostgreSQL)", "closed 32", func() (loadtest.Result, error) {
			return loadtest.Closed(ctx, s.addr, 32, b.dur(10*time.Second, 3*time.Second), loadtest.Fixed(page))
		})
		return nil
	}); err != nil {
		return err
	}

	// 5. The ceiling: the same bytes from memory.
	s, err := b.startCeiling(ctx)
	if err != nil {
		return err
	}
	page := b.pageReq(s, pageConv, 0)
	b.warm(ctx, s, page)
	b.measure(ctx, s, "ceiling: same bytes from memory", "closed 32", func() (loadtest.Result, error) {
		return loadtest.Closed(ctx, s.addr, 32, b.dur(10*time.Second, 3*time.Second), loadtest.Fixed(page))
	})
	for _, rate := range b.rates() {
		b.measure(ctx, s, "ceiling: same bytes from memory", fmt.Sprintf("open %d/s", rate), func() (loadtest.Result, error) {
			return loadtest.Open(ctx, s.addr, float64(rate), b.dur(8*time.Second, 3*time.Second), 256, loadtest.Fixed(page))
		})
	}
	s.stop()

	if b.opts.fanout {
		b.runFanout(ctx)
		b.runTyping(ctx)
	}
	return ctx.Err()
}

// mixOnly is BENCH_ONLY=mix: the 95/5 Zipf mix against the cache-on server, three times (a
// CPU profile taken in the middle of the first), its two parts alone (mixParts), then the
// ceiling it is compared with.
func (b *bench) mixOnly(ctx context.Context, pageConv string) error {
	if err := b.withServer(ctx, "cache on", b.serverEnv("CACHE_ENABLED=true", "RESPONSE_CACHE_ENABLED=true"), true, func(s *server) error {
		page := b.pageReq(s, pageConv, 0)
		b.warm(ctx, s, page)
		for i := range 3 {
			var profiled sync.WaitGroup
			scenario := "95/5 read/write, Zipf over 1000 conversations"
			b.measure(ctx, s, scenario, "closed 32", func() (loadtest.Result, error) {
				if i == 0 {
					profiled.Go(func() { b.capture(ctx, s, scenario, 2*time.Second) })
				}
				return loadtest.Closed(ctx, s.addr, 32, 10*time.Second, b.mix(s, 0.05))
			})
			profiled.Wait()
		}
		b.mixParts(ctx, s, 10*time.Second)
		return b.saveCeilingBody(ctx, s, page)
	}); err != nil {
		return err
	}
	s, err := b.startCeiling(ctx)
	if err != nil {
		return err
	}
	defer s.stop()
	page := b.pageReq(s, pageConv, 0)
	b.warm(ctx, s, page)
	b.measure(ctx, s, "ceiling: same bytes from memory", "closed 32", func() (loadtest.Result, error) {
		return loadtest.Closed(ctx, s.addr, 32, 10*time.Second, loadtest.Fixed(page))
	})
	return ctx.Err()
}

// mixParts measures the 95/5 mix's two parts alone, closed 32 for d each: its reads (every one a
// hit once warm) and its sends (each of which also moves its conversation's generation, so that
// the mix's next read of it executes). Set beside the mix's row, they show what its 5% of sends
// cost.
func (b *bench) mixParts(ctx context.Context, s *server, d time.Duration) {
	b.measure(ctx, s, "the 95/5 mix's reads alone (Zipf first pages)", "closed 32", func() (loadtest.Result, error) {
		return loadtest.Closed(ctx, s.addr, 32, d, b.mix(s, 0))
	})
	b.measure(ctx, s, "the 95/5 mix's sends alone (Zipf over 1000 conversations)", "closed 32", func() (loadtest.Result, error) {
		return loadtest.Closed(ctx, s.addr, 32, d, b.mix(s, 1))
	})
}

// startCeiling starts this program's ceiling server: the saved page's bytes from memory.
func (b *bench) startCeiling(ctx context.Context) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startServer(ctx, "ceiling", []string{self, "ceiling", "-body", b.ceilingFile()}, b.serverEnv(), "/healthz", false)
}

// overload offers twice and four times closed's capacity (its answered rate) for 15 s: the
// admission limit should keep the served rate near capacity and refuse the rest with 503
// (TestOverloadSheds checks 2x). The generator has a connection for every request the server
// may hold at once (the admission queue and 256 more): a refused request holds its connection
// for up to the admission's MaxWait (50 ms), and with 256 connections at 4x the refusals alone
// took them all, so the generator's own backlog was reported as seconds of latency and requests
// "not sent".
func (b *bench) overload(ctx context.Context, s *server, closed row, page loadtest.Request) {
	if closed.Res.Elapsed <= 0 {
		return
	}
	capacity := float64(closed.Res.Requests-closed.Res.Errors) / closed.Res.Elapsed.Seconds()
	for _, k := range []float64{2, 4} {
		rate := k * capacity
		r := b.measure(ctx, s, fmt.Sprintf("overload: %.0fx the closed-32 capacity", k), fmt.Sprintf("open %.0f/s", rate), func() (loadtest.Result, error) {
			return loadtest.Open(ctx, s.addr, rate, b.dur(15*time.Second, 5*time.Second), admission.DefaultMaxQueue+256, loadtest.Fixed(page))
		})
		if r.Res.Elapsed > 0 {
			served := float64(r.Res.Requests-r.Res.Errors) / r.Res.Elapsed.Seconds()
			b.note(fmt.Sprintf("served %.0f req/s (%.0f%% of %.0f), %d refused with 503 + Retry-After, %d other errors",
				served, 100*served/capacity, capacity, r.Res.Refused, r.Res.Errors-r.Res.Refused))
		}
	}
}

// note sets the note of the last row measured.
func (b *bench) note(n string) {
	if len(b.rows) > 0 && b.rows[len(b.rows)-1].Note == "" {
		b.rows[len(b.rows)-1].Note = n
	}
}

// fanInQuery is the start screen: the viewer's 20 latest conversations, each with its newest
// page (the page's fields). graph/client's LatestConversations asks for more per conversation
// (lastMessage, pageInfo) and at first: 20, limit: 50 exceeds the default complexity limit.
const fanInQuery = `query FanIn($first: Int, $limit: Int) {
  conversations(first: $first) {
    edges { node { id title messages(limit: $limit, offset: 0) { items { id seq body createdAt sender { id name } } hasMore } } }
  }
}`

// pageLoads measures page on s alone (one request every 5 ms), under 32 closed-loop clients, and
// at each open-model rate, as scenario, and returns the closed-loop row.
func (b *bench) pageLoads(ctx context.Context, s *server, scenario string, page loadtest.Request) row {
	b.measure(ctx, s, "idle single request (page)", "sequential, 5 ms apart", func() (loadtest.Result, error) {
		return loadtest.Sequential(ctx, s.addr, int(b.dur(300, 100)), 5*time.Millisecond, loadtest.Fixed(page))
	})
	closed := b.measure(ctx, s, scenario, "closed 32", func() (loadtest.Result, error) {
		return loadtest.Closed(ctx, s.addr, 32, b.dur(10*time.Second, 3*time.Second), loadtest.Fixed(page))
	})
	for _, rate := range b.rates() {
		b.measure(ctx, s, scenario, fmt.Sprintf("open %d/s", rate), func() (loadtest.Result, error) {
			return loadtest.Open(ctx, s.addr, float64(rate), b.dur(8*time.Second, 3*time.Second), 256, loadtest.Fixed(page))
		})
	}
	return closed
}

func (b *bench) rates() []int {
	if b.opts.quick {
		return []int{1000, 2500}
	}
	return []int{500, 1000, 2500, 4000}
}

func (b *bench) ceilingFile() string { return filepath.Join(b.opts.dir, "ceiling-page.json") }

// saveCeilingBody keeps the cached page's response bytes for the ceiling server.
func (b *bench) saveCeilingBody(_ context.Context, s *server, page loadtest.Request) error {
	c, err := loadtest.Dial(s.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	body, err := c.Do(page)
	if err != nil {
		return fmt.Errorf("the page: %w", err)
	}
	return os.WriteFile(b.ceilingFile(), body, 0o644)
}

func (b *bench) withServer(ctx context.Context, name string, env []string, pprof bool, f func(*server) error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s, err := startServer(ctx, name, []string{b.opts.bin, "serve"}, env, "/readyz", pprof)
	if err != nil {
		return err
	}
	defer s.stop()
	return f(s)
}

// warm sends load for a moment, so that caches, pools and the scheduler have settled.
func (b *bench) warm(ctx context.Context, s *server, req loadtest.Request) {
	res, err := loadtest.Closed(ctx, s.addr, 8, b.dur(2*time.Second, 500*time.Millisecond), loadtest.Fixed(req))
	if err != nil || res.Errors > 0 {
		logf("%s: warm-up: %v %s", s.name, err, res.FirstError)
	}
}

// mix reads Zipf-distributed conversations' first pages and, with probability writes, sends a
// message to one instead.
func (b *bench) mix(s *server, writes float64) loadtest.Next {
	return b.zipfMix(s, func(r *rand.Rand, k uint64, worker, i int, run int64) (loadtest.Request, bool) {
		if writes > 0 && r.Float64() < writes {
			return b.req(s, client.SendMessage_Operation, map[string]any{"input": map[string]any{
				"conversationId":  b.fx.convs[k],
				"body":            "bench message",
				"clientMessageId": fmt.Sprintf("bench-%d-%d-%d", run, worker, i),
			}}), true
		}
		return loadtest.Request{}, false
	})
}

// zipfMix is the frame of the Zipf mixes: request i of a worker goes to conversation k, drawn
// from the worker's own Zipf distribution (s = 1.1) over the fixture's conversations, with the
// worker's own random source r (seeded with the worker and run, the run's start in Unix
// nanoseconds, which also keeps client message ids unique across runs). other returns the
// request to send instead of k's first page, if any.
func (b *bench) zipfMix(s *server, other func(r *rand.Rand, k uint64, worker, i int, run int64) (loadtest.Request, bool)) loadtest.Next {
	reads := make([]loadtest.Request, len(b.fx.convs))
	for i, c := range b.fx.convs {
		reads[i] = b.pageReq(s, c, 0)
	}
	var mu sync.Mutex
	rngs := map[int]*rand.Rand{}
	zipfs := map[int]*rand.Zipf{}
	run := time.Now().UnixNano()
	return func(worker, i int) loadtest.Request {
		mu.Lock()
		r, ok := rngs[worker]
		if !ok {
			r = rand.New(rand.NewPCG(uint64(worker), uint64(run)))
			rngs[worker] = r
			zipfs[worker] = rand.NewZipf(r, 1.1, 1, uint64(len(reads)-1))
		}
		z := zipfs[worker]
		mu.Unlock()
		k := z.Uint64()
		if req, ok := other(r, k, worker, i, run); ok {
			return req
		}
		return reads[k]
	}
}

// measure runs f against s and records a row with the server's counters over the run.
func (b *bench) measure(ctx context.Context, s *server, scenario, model string, f func() (loadtest.Result, error)) row {
	r := row{Config: s.name, Scenario: scenario, Model: model, HistHit: -1, RespHit: -1, SQLPerReq: -1, PgbActive: -1, PgbTotal: -1}
	if ctx.Err() != nil {
		return r
	}
	h0, m0, okBefore := b.counters(ctx, s)
	c0 := readCPU(s.pid())
	pctx, stopPoll := context.WithCancel(ctx)
	pools := make(chan [2]int, 1)
	go func() { pools <- b.pollPgBouncer(pctx) }()
	res, err := f()
	stopPoll()
	c1 := readCPU(s.pid())
	p := <-pools
	answered := res.Requests - res.NotSent
	r.ServerCPU, r.Others = -1, -1
	if c0.ok && c1.ok && answered > 0 {
		r.ServerCPU = float64((c1.server-c0.server)/time.Microsecond) / float64(answered)
		if busy := c1.busy - c0.busy; busy > 0 && c1.total > c0.total {
			other := busy - (c1.server - c0.server) - (c1.self - c0.self)
			r.Others = max(0, float64(other)/float64(c1.total-c0.total))
		}
	}
	if s.name != "ceiling" {
		r.PgbActive, r.PgbTotal = p[0], p[1]
	}
	if err != nil {
		r.Note = err.Error()
		res.Hist = nil
	}
	r.Res = res
	if h1, m1, okAfter := b.counters(ctx, s); okBefore && okAfter && answered > 0 {
		if dh, dm := h1.Hits-h0.Hits, h1.Misses-h0.Misses; dh+dm > 0 {
			r.HistHit = float64(dh) / float64(dh+dm)
		}
		r.CacheErrors = h1.Errors - h0.Errors
		if h0.ResponseCache != nil && h1.ResponseCache != nil {
			r.CacheErrors += h1.ResponseCache.Errors - h0.ResponseCache.Errors
			if dh, dm := h1.ResponseCache.Hits-h0.ResponseCache.Hits, h1.ResponseCache.Misses-h0.ResponseCache.Misses; dh+dm > 0 {
				r.RespHit = float64(dh) / float64(dh+dm)
			}
		}
		r.SQLPerReq = (m1 - m0) / float64(answered)
	}
	if res.Hist != nil {
		logf("%-18s %-55s %-24s %8.0f req/s  p50 %6.2f ms  p99 %7.2f ms  errors %d %s", s.name, scenario, model, res.RPS(),
			ms(res.Quantile(50)), ms(res.Quantile(99)), res.Errors, res.FirstError)
	} else {
		logf("%s %s %s: %v", s.name, scenario, model, err)
	}
	b.rows = append(b.rows, r)
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// counters reads /health/cache and the SQL statement count.
func (b *bench) counters(ctx context.Context, s *server) (healthCache, float64, bool) {
	if s.name == "ceiling" {
		return healthCache{}, 0, false
	}
	hb, err := loadtest.Get(ctx, "http://"+s.opsAddr+"/health/cache")
	if err != nil {
		return healthCache{}, 0, false
	}
	h, err := decodeHealth(hb)
	if err != nil {
		return healthCache{}, 0, false
	}
	mb, err := loadtest.Get(ctx, "http://"+s.opsAddr+"/metrics")
	if err != nil {
		return healthCache{}, 0, false
	}
	return h, loadtest.SumMetric(mb, "threadline_sql_statements_total"), true
}

// pollPgBouncer samples SHOW POOLS every 250 ms until ctx ends and returns the most server
// connections active and open at once for the application's database. -1 when it cannot.
func (b *bench) pollPgBouncer(ctx context.Context) [2]int {
	out := [2]int{-1, -1}
	cfg, err := pgx.ParseConfig(b.env["PGBOUNCER_ADMIN_URL"])
	if err != nil {
		return out
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return out
	}
	defer conn.Close(context.Background())
	sample := func() {
		qctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rows, err := conn.Query(qctx, "SHOW POOLS")
		if err != nil {
			return
		}
		defer rows.Close()
		fields := rows.FieldDescriptions()
		active, total := 0, 0
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return
			}
			col := map[string]string{}
			for i, f := range fields {
				col[f.Name] = fmt.Sprint(vals[i])
			}
			if col["database"] == "pgbouncer" {
				continue
			}
			n := func(k string) int { v, _ := strconv.Atoi(col[k]); return v }
			active += n("sv_active")
			total += n("sv_active") + n("sv_idle") + n("sv_used") + n("sv_tested") + n("sv_login")
		}
		if rows.Err() == nil {
			out[0], out[1] = max(out[0], active), max(out[1], total)
		}
	}
	for {
		sample()
		select {
		case <-ctx.Done():
			sample()
			return out
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// profile takes a 5-second CPU profile of s while 32 connections load it with req.
func (b *bench) profile(ctx context.Context, s *server, scenario string, req loadtest.Request) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.capture(ctx, s, scenario+", closed 32", 0)
	}()
	_, _ = loadtest.Closed(ctx, s.addr, 32, 6*time.Second, loadtest.Fixed(req))
	<-done
}

// capture takes a 5-second CPU profile of s after delay (the load is the caller's) and keeps
// the top of it for the report.
func (b *bench) capture(ctx context.Context, s *server, scenario string, delay time.Duration) {
	if !s.profiled {
		return
	}
	time.Sleep(delay)
	name := strings.NewReplacer(" ", "-", ",", "", "/", "").Replace(scenario)
	file := filepath.Join(b.opts.dir, "profile-"+name+".pprof")
	body, err := loadtest.Get(ctx, "http://"+s.opsAddr+"/debug/pprof/profile?seconds=5")
	if err == nil {
		err = os.WriteFile(file, body, 0o644)
	}
	if err != nil {
		logf("profile: %v", err)
		return
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", b.opts.bin, file).Output()
	if err != nil {
		logf("pprof: %v", err)
		return
	}
	var cats strings.Builder
	fmt.Fprintf(&cats, "share of the server's CPU samples under each (cumulative, so they overlap):\n\n")
	for _, c := range profileCategories {
		out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodefraction=0", "-nodecount=100000", "-focus="+c.focus, b.opts.bin, file).Output()
		share := "?"
		if m := accounting.FindSubmatch(out); err == nil && m != nil {
			share = string(m[1])
		}
		fmt.Fprintf(&cats, "  %-62s %s\n", c.name, share)
	}
	b.mu.Lock()
	b.profiles = append(b.profiles, profile{Scenario: scenario, Top: cats.String() + "\ntop functions by own time:\n\n" + trimPprof(out), File: file})
	b.mu.Unlock()
}

// profileCategories sort a profile's samples by what the server was doing.
var profileCategories = []struct{ name, focus string }{
	{"gqlgen executing the operation (graph.executionContext)", `graph\.\(\*executionContext\)`},
	{"garbage collection and allocation (runtime.gcBgMarkWorker, mallocgc)", `runtime\.gcBgMarkWorker|runtime\.mallocgc|runtime\.bgsweep|runtime\.gcAssist`},
	{"system calls (socket reads and writes)", `Syscall6|syscall\.Syscall`},
	{"PostgreSQL client (pgx)", `jackc/pgx`},
	{"Redis client (go-redis)", `redis/go-redis`},
	{"response cache (internal/respcache)", `internal/respcache`},
	{"in-process tier of the response cache (internal/localcache)", `internal/localcache`},
	{"hit answered before gqlgen (graph.(*Handler).serveStored)", `graph\.\(\*Handler\)\.serveStored`},
	{"gqlgen's handler (handler.(*Server).ServeHTTP)", `handler\.\(\*Server\)\.ServeHTTP`},
	{"history cache (internal/cache)", `internal/cache`},
	{"JWT verification (internal/auth Verify)", `auth\.\(\*Keys\)\.Verify`},
	{"JSON (encoding/json)", `encoding/json`},
	{"metrics (prometheus, internal/metrics observe)", `prometheus`},
}

var accounting = regexp.MustCompile(`accounting for [^,]+, ([0-9.]+%) of`)

func trimPprof(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var keep []string
	for _, l := range lines {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

var benchLine = regexp.MustCompile(`(?m)^BenchmarkFanoutWebSocket\S*\s.*$`)

// runFanout runs the existing WebSocket fan-out benchmark (its own services, the server binary),
// once per scenario: messageAdded for as many events as the closed rows' budget allows, the
// sidebar's viewerEvents for fewer, since each of its events reads every subscriber's unread
// count and takes seconds at 10,000 subscribers of one conversation.
func (b *bench) runFanout(ctx context.Context) {
	type run struct {
		scenario, iters string
		limit           time.Duration
	}
	subs, runs := "10000", []run{{"messageAdded", "100x", 6 * time.Minute}, {"sidebar", "20x", 6 * time.Minute}}
	if b.opts.quick {
		subs, runs = "500", []run{{"messageAdded", "20x", 2 * time.Minute}, {"sidebar", "10x", 2 * time.Minute}}
	}
	var all []string
	for _, r := range runs {
		logf("fan-out: %s, %s subscribers, %s", r.scenario, subs, r.iters)
		all = append(all, b.runFanoutScenario(ctx, subs, r.scenario, r.iters, r.limit))
	}
	b.fanout = strings.Join(all, "\n")
	logf("fan-out:\n%s", b.fanout)
}

func (b *bench) runFanoutScenario(ctx context.Context, subs, scenario, iters string, limit time.Duration) string {
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(cctx, "go", "test", "-run", "XXX", "-bench", "FanoutWebSocket", "-benchtime", iters, "-timeout", "10m", "./ops/loadtest")
	// The benchmark's server inherits this environment: no rate limit on its 10,000 dials.
	cmd.Env = append(os.Environ(), "LOADTEST_SUBSCRIBERS="+subs, "LOADTEST_FANOUT="+scenario, "RATE_LIMIT_DISABLED=true")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	lines := benchLine.FindAllString(string(out), -1)
	res := strings.Join(lines, "\n")
	if err != nil || len(lines) == 0 {
		tail := string(out)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		res += fmt.Sprintf("\n(go test, %s: %v)\n%s", scenario, err, tail)
	}
	return res
}

var typingLine = regexp.MustCompile(`(?m)^BenchmarkTypingAcrossInstances\S*\s.*$`)

// runTyping runs the typing-indicator latency benchmark (its own services, two server
// processes).
func (b *bench) runTyping(ctx context.Context) {
	subs, iters, limit := "1000", "500x", 3*time.Minute
	if b.opts.quick {
		subs, iters, limit = "100", "50x", time.Minute
	}
	logf("typing: %s subscribers, %s", subs, iters)
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(cctx, "go", "test", "-run", "XXX", "-bench", "TypingAcrossInstances", "-benchtime", iters, "-timeout", "5m", "./ops/loadtest")
	cmd.Env = append(os.Environ(), "LOADTEST_TYPING_SUBSCRIBERS="+subs)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	lines := typingLine.FindAllString(string(out), -1)
	b.typing = strings.Join(lines, "\n")
	if err != nil || len(lines) == 0 {
		tail := string(out)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		b.typing += fmt.Sprintf("\n(go test: %v)\n%s", err, tail)
	}
	logf("typing:\n%s", b.typing)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for l := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuSample is CPU time: of the server process, of this process, and of the whole machine
// (busy and total, over all cores), from /proc.
type cpuSample struct {
	server, self, busy, total time.Duration
	ok                        bool
}

const clockTick = 10 * time.Millisecond // USER_HZ = 100 on Linux

func procCPU(path string) (time.Duration, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses: utime and stime are the 12th
	// and 13th of them.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+st) * clockTick, true
}

func readCPU(pid int) cpuSample {
	var c cpuSample
	var ok1, ok2 bool
	c.server, ok1 = procCPU(fmt.Sprintf("/proc/%d/stat", pid))
	c.self, ok2 = procCPU("/proc/self/stat")
	b, err := os.ReadFile("/proc/stat")
	if err != nil || !ok1 || !ok2 {
		return c
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return c
	}
	var total, idle int64
	for i, v := range f[1:] {
		if i >= 8 { // guest times are counted in user already
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	c.total, c.busy = time.Duration(total)*clockTick, time.Duration(total-idle)*clockTick
	c.ok = true
	return c
}

// startReplica starts a streaming replica of the bench stack's PostgreSQL (devstack; stopped
// with the stack by ops/stack down) and returns its URL through PgBouncer.
func (b *bench) startReplica(ctx context.Context) (string, error) {
	st, err := devstack.Attach(ctx, b.opts.dir)
	if err != nil {
		return "", err
	}
	began := time.Now()
	r, err := st.StartReplica(ctx)
	if err != nil {
		return "", err
	}
	logf("read replica on port %d ready in %s", r.Port, time.Since(began).Round(time.Millisecond))
	return r.DatabaseURL, nil
}

var metricLabel = regexp.MustCompile(`(\w+)="([^"]*)"`)

// dbReads reads threadline_db_reads_total from s's /metrics, by "target/reason"; nil when it
// cannot.
func (b *bench) dbReads(ctx context.Context, s *server) map[string]float64 {
	mb, err := loadtest.Get(ctx, "http://"+s.opsAddr+"/metrics")
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(mb)) {
		rest, ok := strings.CutPrefix(line, "threadline_db_reads_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		l := map[string]string{}
		for _, m := range metricLabel.FindAllStringSubmatch(labels, -1) {
			l[m[1]] = m[2]
		}
		out[l["target"]+"/"+l["reason"]] += v
	}
	return out
}

// replicaShare describes the reads between two dbReads: the replica's share, and why the
// others went to the primary.
func replicaShare(before, after map[string]float64) string {
	if before == nil || after == nil {
		return "replica share unknown (no /metrics)"
	}
	var total, replica float64
	var why []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		d := after[k] - before[k]
		if d <= 0 {
			continue
		}
		total += d
		if k == "replica/replayed" {
			replica += d
		} else {
			why = append(why, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "primary/"), d))
		}
	}
	if total == 0 {
		return "no reads a replica may serve"
	}
	return fmt.Sprintf("replica served %.0f%% of %.0f replica-eligible reads (history-page misses); primary: %s",
		100*replica/total, total, strings.Join(why, ", "))
}
