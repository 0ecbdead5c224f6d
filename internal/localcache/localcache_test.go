package localcache_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/localcache"
	"github.com/threadline/threadline/internal/testenv"
)

type fixture struct {
	tier  *localcache.Tier
	rdb   *redis.Client
	reg   *prometheus.Registry
	redis *testenv.Redis
}

// newFixture starts a redis-server of the test's own and a tier over it with cfg (by default 1
// MiB for the prefixes tok: and gen:), and waits until its tracking is established.
func newFixture(t *testing.T, cfg localcache.Config) *fixture {
	t.Helper()
	f := &fixture{redis: testenv.StartRedis(t)}
	f.rdb = f.client(t)
	if cfg.Bytes == 0 {
		cfg.Bytes = 1 << 20
	}
	if cfg.Prefixes == nil {
		cfg.Prefixes = []string{"tok:", "gen:"}
	}
	f.reg = prometheus.NewRegistry()
	cfg.Registerer = f.reg
	f.tier = localcache.New(f.rdb.Options(), cfg)
	t.Cleanup(f.tier.Close)
	f.waitActive(t)
	return f
}

// client returns a client of the fixture's Redis, on connections of its own and without
// retries, closed when t ends.
func (f *fixture) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: f.redis.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitActive waits until tracking is established.
func (f *fixture) waitActive(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f.tier.Active() {
		if time.Now().After(deadline) {
			t.Fatal("tracking not established after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// read reads key through the pool and fills the tier with it, as a user of the tier does, after
// a barrier: the invalidations of the test's own writes before it are applied, and do not
// refuse the fill.
func (f *fixture) read(t *testing.T, key string) (string, bool) {
	t.Helper()
	if err := f.tier.Barrier(context.Background()); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	s := f.tier.Snapshot()
	v, err := f.rdb.Get(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return v, f.tier.Fill(s, key, v)
}

// cached returns what the tier holds for key after a barrier.
func (f *fixture) cached(t *testing.T, key string) (string, bool) {
	t.Helper()
	if err := f.tier.Barrier(context.Background()); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	v, ok := f.tier.Get(key)
	if !ok {
		return "", false
	}
	return v.(string), true
}

func TestInvalidatedAfterAWriteByAnotherClient(t *testing.T) {
	t.Parallel()
	f := newFixture(t, localcache.Config{})
	other := f.client(t)
	ctx := context.Background()

	for _, c := range []struct {
		name   string
		change func(key string) error
	}{
		{"SET", func(k string) error { return other.Set(ctx, k, "new", 0).Err() }},
		{"DEL", func(k string) error { return other.Del(ctx, k).Err() }},
		{"EVAL", func(k string) error {
			return other.Eval(ctx, "return redis.call('SET', KEYS[1], 'lua')", []string{k}).Err()
		}},
		{"expiry", func(k string) error {
			if err := other.PExpire(ctx, k, time.Millisecond).Err(); err != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond)
			return other.Get(ctx, k).Err() // a read of an expired key deletes it
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := "tok:" + c.name
			if err := other.Set(ctx, key, "old", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if v, kept := f.read(t, key); v != "old" || !kept {
				t.Fatalf("read %q, kept %v", v, kept)
			}
			if v, ok := f.cached(t, key); !ok || v != "old" {
				t.Fatalf("before the change: %q %v", v, ok)
			}
			if err := c.change(key); err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			if v, ok := f.cached(t, key); ok {
				t.Fatalf("after the change the tier still holds %q", v)
			}
		})
	}

	t.Run("untracked prefix", func(t *testing.T) {
		if err := other.Set(ctx, "other:x", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, kept := f.read(t, "other:x"); kept {
			t.Fatal("a key outside the prefixes was kept: nothing would invalidate it")
		}
	})
}

// TestReadYourWritesAcrossClients: a writer on its own connection moves a key; a read that
// starts after the write returned, through the tier after a barrier, never sees an older value,
// while other readers keep filling the tier concurrently.
func TestReadYourWritesAcrossClients(t *testing.T) {
	t.Parallel()
	f := newFixture(t, localcache.Config{})
	writer := f.client(t)
	ctx := context.Background()
	const key = "gen:{1}"
	if err := writer.Set(ctx, key, "0", 0).Err(); err != nil {
		t.Fatal(err)
	}

	var reads testenv.StaleReads // versions are the key's values; every read recorded is a hit
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var fills atomic.Int64
	testenv.Repeat(&wg, 4, stop, func() bool { // fillers and readers
		want := reads.Acked()
		if err := f.tier.Barrier(ctx); err != nil {
			t.Errorf("barrier: %v", err)
			return false
		}
		if v, ok := f.tier.Get(key); ok {
			n, _ := strconv.ParseInt(v.(string), 10, 64)
			reads.Saw(want, n)
			return true
		}
		s := f.tier.Snapshot()
		v, err := f.rdb.Get(ctx, key).Result()
		if err != nil {
			t.Errorf("GET: %v", err)
			return false
		}
		if f.tier.Fill(s, key, v) {
			fills.Add(1)
		}
		return true
	})
	const writes = 2000
	for i := int64(1); i <= writes; i++ {
		if err := writer.Set(ctx, key, strconv.FormatInt(i, 10), 0).Err(); err != nil {
			t.Fatal(err)
		}
		reads.Ack(i)
		if i%10 == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d writes, %d fills, %d hits", writes, fills.Load(), reads.Reads())
	reads.Check(t)
	if reads.Reads() == 0 || fills.Load() == 0 {
		t.Fatalf("the race exercised too little: %d fills, %d hits", fills.Load(), reads.Reads())
	}
}

// TestFillRefusedAfterInvalidation: a value read before a change whose invalidation was
// applied before the fill is not kept.
func TestFillRefusedAfterInvalidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, localcache.Config{})
	ctx := context.Background()
	if err := f.rdb.Set(ctx, "tok:a", "old", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := f.tier.Snapshot()
	old, err := f.rdb.Get(ctx, "tok:a").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Set(ctx, "tok:a", "new", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.tier.Barrier(ctx); err != nil { // the invalidation is applied
		t.Fatal(err)
	}
	if f.tier.Fill(s, "tok:a", old) {
		t.Fatal("a value read before an applied invalidation was kept")
	}
	if v, ok := f.tier.Get("tok:a"); ok {
		t.Fatalf("holds %v", v)
	}
	// A fresh read is kept.
	if v, kept := f.read(t, "tok:a"); v != "new" || !kept {
		t.Fatalf("read %q, kept %v", v, kept)
	}
}

// TestEmptiesWhenTrackingIsLost: a killed tracking connection, a FLUSHALL, a Redis restart and
// an unhealthy breaker each empty the tier; it establishes tracking again and stays exact.
func TestEmptiesWhenTrackingIsLost(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	healthy.Store(true)
	f := newFixture(t, localcache.Config{Name: "lc-test", Healthy: healthy.Load, BarrierTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	admin := f.client(t)

	// fill keeps a value and a response-like untracked entry, and checks both are there.
	fill := func(t *testing.T, rdb *redis.Client, v string) {
		t.Helper()
		if err := rdb.Set(ctx, "tok:k", v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		f.waitActive(t)
		if got, kept := f.read(t, "tok:k"); got != v || !kept {
			t.Fatalf("read %q, kept %v", got, kept)
		}
		f.tier.Set("resp:1", []byte("body"), 4, time.Minute)
		if _, ok := f.tier.Get("resp:1"); !ok {
			t.Fatal("the untracked entry was not kept")
		}
	}
	emptied := func(t *testing.T, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, tok := f.tier.Get("tok:k")
			_, resp := f.tier.Get("resp:1")
			if !tok && !resp {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the tier still holds its entries", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	t.Run("CLIENT KILL", func(t *testing.T) {
		fill(t, admin, "1")
		list, err := admin.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		var id string
		for line := range strings.Lines(list) {
			if strings.Contains(line, "name=lc-test ") {
				for field := range strings.FieldsSeq(line) {
					if v, ok := strings.CutPrefix(field, "id="); ok {
						id = v
					}
				}
			}
		}
		if id == "" {
			t.Fatalf("no tracking connection in CLIENT LIST:\n%s", list)
		}
		if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
			t.Fatal(err)
		}
		emptied(t, "after CLIENT KILL")
		// A change while tracking was down is seen once it is back.
		if err := admin.Set(ctx, "tok:k", "2", 0).Err(); err != nil {
			t.Fatal(err)
		}
		f.waitActive(t)
		if v, ok := f.cached(t, "tok:k"); ok {
			t.Fatalf("after reconnecting the tier holds %q", v)
		}
	})

	t.Run("FLUSHALL", func(t *testing.T) {
		fill(t, admin, "3")
		if err := admin.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := f.tier.Barrier(ctx); err != nil {
			t.Fatal(err)
		}
		emptied(t, "after FLUSHALL")
	})

	t.Run("unhealthy", func(t *testing.T) {
		fill(t, admin, "4")
		healthy.Store(false)
		emptied(t, "with Healthy false")
		if err := f.tier.Barrier(ctx); err == nil {
			t.Fatal("a barrier succeeded while unhealthy")
		}
		healthy.Store(true)
		f.waitActive(t)
	})

	t.Run("restart", func(t *testing.T) {
		fill(t, admin, "5")
		f.redis.Stop(t)
		emptied(t, "with Redis stopped")
		if err := f.tier.Barrier(ctx); err == nil {
			t.Fatal("a barrier succeeded with Redis stopped")
		}
		f.redis.Restart(t)
		restarted := f.client(t)
		fill(t, restarted, "6")
		if err := restarted.Set(ctx, "tok:k", "7", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if v, ok := f.cached(t, "tok:k"); ok {
			t.Fatalf("after a change the restarted tier holds %q", v)
		}
	})

	if s := f.tier.Stats(); s.Flushes < 4 {
		t.Errorf("stats %+v: want at least 4 flushes", s)
	}
}

// TestByteBound: however much is kept, the tier stays within its bound, evicting the least
// recently used.
func TestByteBound(t *testing.T) {
	t.Parallel()
	const bound = 64 << 10
	f := newFixture(t, localcache.Config{Bytes: bound})
	value := strings.Repeat("x", 1000)
	for i := range 1000 {
		f.tier.Set(fmt.Sprint("resp:", i), value, int64(len(value)), time.Minute)
		s := f.tier.Snapshot()
		f.tier.Fill(s, fmt.Sprint("tok:", i), value)
		if i == 10 {
			f.tier.Get("resp:0") // recently used: survives the next evictions for a while
		}
		if st := f.tier.Stats(); st.Bytes > bound {
			t.Fatalf("after %d entries: %d bytes, bound %d", i, st.Bytes, bound)
		}
	}
	st := f.tier.Stats()
	if st.Entries == 0 || st.Bytes < bound/2 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := f.tier.Get("resp:999"); !ok {
		t.Fatal("the newest entry was evicted")
	}
	if _, ok := f.tier.Get("resp:1"); ok {
		t.Fatal("an old entry survived 1000 newer ones")
	}
	// An entry larger than the bound is never kept.
	f.tier.Set("resp:huge", "", bound+1, time.Minute)
	if _, ok := f.tier.Get("resp:huge"); ok {
		t.Fatal("an entry over the bound was kept")
	}
	if localcache.New(nil, localcache.Config{Bytes: 0}) != nil {
		t.Fatal("Bytes 0 should turn the tier off")
	}
}

// TestBarriersCoalesce: concurrent barriers share round trips, and each still returns.
func TestBarriersCoalesce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, localcache.Config{})
	const n = 2000
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for range n / 50 {
				if err := f.tier.Barrier(context.Background()); err != nil {
					t.Errorf("barrier: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := f.tier.Stats()
	t.Logf("%d barriers in %d round trips", n, s.Barriers)
	if s.Barriers == 0 || s.Barriers > n {
		t.Fatalf("%d round trips for %d barriers", s.Barriers, n)
	}
}
