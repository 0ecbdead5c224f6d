package cache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/testenv"
)

// fixture is a cached store over a fresh database and a Redis of the test's own, with every
// SQL statement and Redis round trip counted.
type fixture struct {
	store   *cache.Store
	service *chat.Service
	rdb     redis.UniversalClient
	breaker *redisclient.Breaker
	direct  *pgxpool.Pool
	pool    *pgxpool.Pool // the store's, through PgBouncer
	users   []int64
	conv    int64

	sqlStatements atomic.Int64
	sqlPages      atomic.Int64 // MessagePages statements
	roundTrips    testenv.RoundTripCounter
}

func newFixture(t testing.TB, redisURL string, messages int) *fixture {
	t.Helper()
	d := testenv.NewDatabase(t)
	f := &fixture{}
	pool, err := db.OpenPool(context.Background(), d.PooledURL, db.PoolConfig{
		MaxConns: 16,
		Tracer: &db.Tracer{Observe: func(_ context.Context, name string, _ time.Duration, _ error) {
			f.sqlStatements.Add(1)
			if name == "MessagePages" {
				f.sqlPages.Add(1)
			}
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	f.pool = pool
	f.direct = dbtest.Open(t, d.DirectURL)
	f.users = dbtest.Users(t, f.direct, "Alice", "Bob")
	f.conv = dbtest.Conversation(t, f.direct, "cached", f.users...)
	if messages > 0 {
		dbtest.Messages(t, f.direct, f.conv, f.users, messages)
	}
	f.rdb, err = redisclient.Open(redisURL, redisclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.rdb.Close() })
	f.rdb.AddHook(&f.roundTrips)
	f.breaker = redisclient.NewBreaker(redisclient.BreakerConfig{OpenTimeout: 300 * time.Millisecond, CallTimeout: 200 * time.Millisecond})
	f.store = cache.NewStore(db.NewStore(pool), f.rdb, f.breaker, cache.Config{})
	t.Cleanup(f.store.Close)
	f.service = chat.NewService(f.store, chat.Hook{Name: "history cache", Run: f.store.AfterCommit})
	return f
}

func (f *fixture) page(t testing.TB, limit, offset int) chat.Page {
	t.Helper()
	pages, err := f.store.MessagePages(context.Background(), []chat.PageKey{{ConversationID: f.conv, Limit: limit, Offset: offset}})
	if err != nil {
		t.Fatal(err)
	}
	return pages[0]
}

func (f *fixture) send(t testing.TB, body string) chat.Message {
	t.Helper()
	m, err := f.service.SendMessage(context.Background(), f.users[0], chat.NewMessage{ConversationID: f.conv, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestHitMissAndInvalidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.NewRedis(t), 60)

	p := f.page(t, 50, 0)
	if len(p.Messages) != 50 || p.Messages[0].Seq != 60 || !p.HasMore || f.sqlPages.Load() != 1 {
		t.Fatalf("cold page: %d messages, first seq %d, %d statements", len(p.Messages), p.Messages[0].Seq, f.sqlPages.Load())
	}
	again := f.page(t, 50, 0)
	if f.sqlPages.Load() != 1 {
		t.Fatal("a warm read went to PostgreSQL")
	}
	if fmt.Sprint(again) != fmt.Sprint(p) {
		t.Fatalf("cached page differs:\n%v\n%v", again, p)
	}
	if s := f.store.Stats(); s.Hits != 1 || s.Misses != 1 || s.HitRatio != 0.5 {
		t.Fatalf("stats %+v", s)
	}
	// Keys: the seed's shape, hash-tagged by conversation.
	keys, err := f.rdb.Keys(context.Background(), "msg:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("msg:history:{%d}:", f.conv)
	var pageKeys int
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) && strings.HasSuffix(k, ":50:0") {
			pageKeys++
			if ttl := f.rdb.TTL(context.Background(), k).Val(); ttl <= 0 || ttl > 30*time.Second {
				t.Fatalf("first page TTL %v, want up to 30s", ttl)
			}
		}
	}
	if pageKeys != 1 || !containsString(keys, fmt.Sprintf("msg:gen:{%d}", f.conv)) {
		t.Fatalf("keys %v", keys)
	}
	f.page(t, 20, 20)
	for _, k := range mustKeys(t, f.rdb, prefix+"*:20:20") {
		if ttl := f.rdb.TTL(context.Background(), k).Val(); ttl <= 30*time.Second || ttl > 60*time.Second {
			t.Fatalf("deeper page TTL %v, want 60s", ttl)
		}
	}

	m := f.send(t, "new")
	p = f.page(t, 50, 0)
	if p.Messages[0].ID != m.ID || f.sqlPages.Load() != 3 {
		t.Fatalf("after a send: first %+v, %d statements", p.Messages[0], f.sqlPages.Load())
	}
}

func mustKeys(t testing.TB, rdb redis.UniversalClient, pattern string) []string {
	keys, err := rdb.Keys(context.Background(), pattern).Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %q: %v %v", pattern, keys, err)
	}
	return keys
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestNoStaleReads races readers against writers, with a delay between a reader's SQL read and
// its cache fill, while another goroutine deletes the generation key and flushes Redis at random:
// a read that starts after sendMessage returned must contain that message.
func TestNoStaleReads(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.NewRedis(t), 5)
	f.store.SetBeforeFill(func() { time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) })

	const minReads = 10000
	var reads testenv.StaleReads // versions are seqs
	reads.Ack(5)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var stopOnce sync.Once

	sends := 0
	testenv.Repeat(&wg, 1, stop, func() bool { // writer
		m, err := f.service.SendMessage(ctx, f.users[sends%2], chat.NewMessage{ConversationID: f.conv, Body: fmt.Sprint("w", sends)})
		sends++
		if err != nil {
			t.Error(err)
			return false
		}
		reads.Ack(m.Seq)
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		return true
	})
	wg.Go(func() { // chaos: the generation key deleted, or all of Redis flushed, at any moment
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1+rand.IntN(20)) * time.Millisecond):
			}
			if rand.IntN(4) == 0 {
				f.rdb.FlushAll(ctx)
			} else {
				f.rdb.Del(ctx, fmt.Sprintf("msg:gen:{%d}", f.conv))
			}
		}
	})
	testenv.Repeat(&wg, 4, stop, func() bool { // readers
		want := reads.Acked()
		pages, err := f.store.MessagePages(ctx, []chat.PageKey{{ConversationID: f.conv, Limit: 10}})
		if err != nil {
			t.Error(err)
			return false
		}
		if reads.Saw(want, pages[0].Messages[0].Seq) >= minReads {
			stopOnce.Do(func() { close(stop) })
		}
		return true
	})
	wg.Wait()
	reads.Check(t)
	s := f.store.Stats()
	t.Logf("%d reads, %d sends, %d hits, %d misses, 0 stale", reads.Reads(), sends, s.Hits, s.Misses)
	if s.Hits == 0 || s.Misses == 0 {
		t.Fatalf("the race exercised only one path: %+v", s)
	}
}

func TestConcurrentColdReadsShareOneStatement(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.NewRedis(t), 80)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			<-start
			pages, err := f.store.MessagePages(context.Background(), []chat.PageKey{{ConversationID: f.conv, Limit: 50}})
			if err != nil || len(pages[0].Messages) != 50 {
				t.Errorf("read: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := f.sqlPages.Load(); n != 1 {
		t.Fatalf("200 concurrent cold reads cost %d statements, want 1", n)
	}
}

func TestRedisDownReadsStillSucceed(t *testing.T) {
	t.Parallel()
	rds := testenv.StartRedis(t)
	f := newFixture(t, rds.URL(), 30)
	f.page(t, 10, 0)
	f.page(t, 10, 0)
	if s := f.store.Stats(); s.Hits != 1 {
		t.Fatalf("before: %+v", s)
	}

	rds.Stop(t)
	for i := range 20 {
		p := f.page(t, 10, 0) // must not fail
		if len(p.Messages) != 10 {
			t.Fatalf("read %d during the outage: %d messages", i, len(p.Messages))
		}
		if i == 5 {
			f.send(t, "during the outage") // the bump fails and is retried later
		}
	}
	// Open, or half-open once its 300 ms have passed since the last failure (the reads after it,
	// from PostgreSQL, can take that long on a busy machine): tripped either way.
	if st := f.breaker.State(); st == "closed" {
		t.Fatalf("breaker %s during the outage, want open (or half-open)", st)
	}
	if p := f.page(t, 10, 0); p.Messages[0].Body != "during the outage" {
		t.Fatalf("a read during the outage misses the message sent then: %+v", p.Messages[0])
	}

	rds.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := f.store.Stats().Hits
		f.page(t, 10, 0)
		f.page(t, 10, 0)
		if f.store.Stats().Hits > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hits 10s after Redis came back; breaker %s", f.breaker.State())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p := f.page(t, 10, 0); p.Messages[0].Body != "during the outage" {
		t.Fatalf("after recovery: %+v", p.Messages[0])
	}
}

// TestRedisHungThenBack pauses Redis (it keeps its data but answers nothing), sends a message
// meanwhile, and checks that once Redis answers again the retried token bump hides the page
// stored before the send.
func TestRedisHungThenBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.NewRedis(t), 20)
	f.page(t, 10, 0) // stored under the current token
	testenv.PauseRedis(t, f.rdb, 1500*time.Millisecond)
	start := time.Now()
	m := f.send(t, "while hung")
	// Every read from now on must contain the message: first from PostgreSQL while Redis hangs,
	// then, once Redis answers again with the old token and page still in it, because this
	// instance reads around its pending token bump until the retry lands.
	deadline := start.Add(15 * time.Second)
	var hitsAfter bool
	for !hitsAfter {
		if time.Now().After(deadline) {
			t.Fatalf("15s after the pause no cached read; breaker %s", f.breaker.State())
		}
		hits := f.store.Stats().Hits
		if p := f.page(t, 10, 0); p.Messages[0].ID != m.ID {
			t.Fatalf("%v after the send: a read misses the acknowledged message (first seq %d)", time.Since(start), p.Messages[0].Seq)
		}
		hitsAfter = time.Since(start) > 1500*time.Millisecond && f.store.Stats().Hits > hits
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	addrs := testenv.NewRedisCluster(t)
	url := "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
	f := newFixture(t, url, 30)
	if _, ok := f.rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("REDIS_URL %q did not open a cluster client", url)
	}
	// More conversations, so that their keys spread over the three nodes.
	convs := []int64{f.conv}
	for i := range 11 {
		c := dbtest.Conversation(t, f.direct, fmt.Sprint("c", i), f.users...)
		dbtest.Messages(t, f.direct, c, f.users, 5+i)
		convs = append(convs, c)
	}
	keys := make([]chat.PageKey, len(convs))
	for i, c := range convs {
		keys[i] = chat.PageKey{ConversationID: c, Limit: 3}
	}
	for round := range 2 {
		pages, err := f.store.MessagePages(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range pages {
			if len(p.Messages) != 3 || p.Messages[0].ConversationID != convs[i] {
				t.Fatalf("round %d key %d: %+v", round, i, p)
			}
		}
	}
	if s := f.store.Stats(); s.Hits != int64(len(keys)) || s.Misses != int64(len(keys)) || f.sqlPages.Load() != 1 {
		t.Fatalf("stats %+v, %d statements", s, f.sqlPages.Load())
	}
	// Every key of a conversation lives on one node, and the keys spread over the cluster.
	nodes := map[string]bool{}
	for _, c := range convs {
		slot := f.rdb.(*redis.ClusterClient).ClusterKeySlot(ctx, fmt.Sprintf("msg:gen:{%d}", c)).Val()
		pageSlot := f.rdb.(*redis.ClusterClient).ClusterKeySlot(ctx, fmt.Sprintf("msg:history:{%d}:tok:3:0", c)).Val()
		if slot != pageSlot {
			t.Fatalf("conversation %d: generation slot %d, page slot %d", c, slot, pageSlot)
		}
		nodes[fmt.Sprint(slot*3/16384)] = true
	}
	if len(nodes) < 2 {
		t.Fatalf("keys all in one third of the slots: %v", nodes)
	}
	m := f.send(t, "clustered")
	pages, err := f.store.MessagePages(ctx, keys[:1])
	if err != nil || pages[0].Messages[0].ID != m.ID {
		t.Fatalf("after a send on the cluster: %v %+v", err, pages)
	}
}

// BenchmarkHistoryPage measures a 50-message page read through the cache, in process, against
// local Redis and PostgreSQL: a hit, and a miss (a new generation before each read, so every
// read goes to PostgreSQL and fills Redis).
func BenchmarkHistoryPage(b *testing.B) {
	f := newFixture(b, testenv.NewRedis(b), 200)
	ctx := context.Background()
	key := []chat.PageKey{{ConversationID: f.conv, Limit: 50}}
	b.Run("hit", func(b *testing.B) {
		if _, err := f.store.MessagePages(ctx, key); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.store.MessagePages(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			f.store.Invalidate(ctx, f.conv)
			b.StartTimer()
			if _, err := f.store.MessagePages(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.store.Store.MessagePages(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLateBumpReadsAround sends with a post-commit wait while Redis hangs: the send answers
// before its token bump returns, the conversation is pending at the answer (the hook's Late),
// every read from then on contains the message, and once Redis answers again the retry lands
// and reads are served from Redis again.
func TestLateBumpReadsAround(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.NewRedis(t), 20)
	f.service = chat.NewServiceConfig(f.store, chat.ServiceConfig{
		Hooks: []chat.Hook{{Name: "history cache", Run: f.store.AfterCommit, Late: f.store.Late}},
		Wait:  20 * time.Millisecond,
	})
	f.page(t, 10, 0) // stored under the current token
	testenv.PauseRedis(t, f.rdb, 1000*time.Millisecond)
	start := time.Now()
	m := f.send(t, "while hung")
	if !f.store.HasPending() && time.Since(start) < time.Second {
		t.Fatal("the send answered while Redis hangs, and its conversation is not pending")
	}
	deadline := start.Add(15 * time.Second)
	for f.store.HasPending() || time.Since(start) < time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("15s after the pause the bump is still pending; breaker %s", f.breaker.State())
		}
		if p := f.page(t, 10, 0); p.Messages[0].ID != m.ID {
			t.Fatalf("%v after the send: a read misses the acknowledged message (first seq %d)", time.Since(start), p.Messages[0].Seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hits := f.store.Stats().Hits
	for range 2 {
		if p := f.page(t, 10, 0); p.Messages[0].ID != m.ID {
			t.Fatalf("after the retry: a read misses the acknowledged message (first seq %d)", p.Messages[0].Seq)
		}
	}
	if f.store.Stats().Hits == hits {
		t.Errorf("no hit after the retry landed: %+v", f.store.Stats())
	}
}

// TestPendingClearedOnlyByLaterBump marks a conversation late while a bump sent before the mark
// is still on its way: that bump landing does not clear the mark (it may have landed before the
// write committed); the next bump does.
func TestPendingClearedOnlyByLaterBump(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.NewRedis(t), 3)
	ctx := context.Background()
	var once sync.Once
	marked := make(chan struct{})
	f.rdb.AddHook(beforeSet{fn: func() {
		once.Do(func() {
			// The bump has its ticket and is on its way: the write it will be taken for
			// commits now, and its mutation answers late.
			f.store.Late(chat.Change{ConversationID: f.conv, Event: &chat.MessageAdded{}})
			close(marked)
		})
	}})
	f.store.Invalidate(ctx, f.conv)
	select {
	case <-marked:
	case <-time.After(10 * time.Second):
		t.Fatal("the bump never reached Redis")
	}
	if !f.store.HasPending() {
		t.Fatal("a bump sent before the mark cleared it")
	}
	f.store.Invalidate(ctx, f.conv)
	if f.store.HasPending() {
		t.Fatal("a bump sent after the mark, that succeeded, left it pending")
	}
}

// beforeSet runs fn before each command that moves a token: SET, or the bump's script (EVAL or
// EVALSHA).
type beforeSet struct{ fn func() }

func (beforeSet) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h beforeSet) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "set", "eval", "evalsha":
			h.fn()
		}
		return next(ctx, cmd)
	}
}
func (beforeSet) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
