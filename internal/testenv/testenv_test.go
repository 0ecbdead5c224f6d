package testenv_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{Migrate: func(ctx context.Context, directURL string) error {
		conn, err := pgx.Connect(ctx, directURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL)`)
		return err
	}})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// pooled opens a pgx pool through PgBouncer the way the server does: PgBouncer
// 1.18 in transaction mode has no prepared statements.
func pooled(t *testing.T, ctx context.Context, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func countNotes(t *testing.T, ctx context.Context, conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a, b := testenv.NewDatabase(t), testenv.NewDatabase(t)
	if a.Name == b.Name {
		t.Fatalf("both databases are named %s", a.Name)
	}
	connA, connB := connect(t, ctx, a.DirectURL), connect(t, ctx, b.DirectURL)
	if _, err := connA.Exec(ctx, "INSERT INTO notes (body) VALUES ('only in a')"); err != nil {
		t.Fatal(err)
	}
	if got := countNotes(t, ctx, connA); got != 1 {
		t.Errorf("database a holds %d notes, want 1", got)
	}
	if got := countNotes(t, ctx, connB); got != 0 {
		t.Errorf("database b holds %d notes, want 0 (it sees a's rows)", got)
	}
}

// TestFilledDatabases: tests asking at once for databases of one filled template get copies of
// it, filled once, each their own.
func TestFilledDatabases(t *testing.T) {
	t.Parallel()
	var fills atomic.Int32
	fill := func(ctx context.Context, directURL string) error {
		fills.Add(1)
		conn, err := pgx.Connect(ctx, directURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "INSERT INTO notes (body) SELECT 'filled ' || n FROM generate_series(1, 3) n")
		return err
	}
	t.Run("group", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				d := testenv.NewFilledDatabase(t, "notes_filled", fill)
				conn := connect(t, ctx, d.DirectURL)
				if got := countNotes(t, ctx, conn); got != 3 {
					t.Fatalf("the copy holds %d notes, want the template's 3", got)
				}
				if _, err := conn.Exec(ctx, "INSERT INTO notes (body) VALUES ('mine')"); err != nil {
					t.Fatal(err)
				}
				if got := countNotes(t, ctx, conn); got != 4 {
					t.Errorf("the copy holds %d notes after one insert, want 4", got)
				}
			})
		}
	})
	if n := fills.Load(); n != 1 {
		t.Errorf("the template was filled %d times, want once", n)
	}
}

func TestPooledURLWithExecMode(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db := testenv.NewDatabase(t)
	pool := pooled(t, ctx, db.PooledURL)

	var name string
	if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if name != db.Name {
		t.Fatalf("PooledURL reaches database %s, want %s", name, db.Name)
	}
	// Many concurrent parameterized statements and transactions: with
	// prepared statements this fails under transaction pooling.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			errs <- pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				var id int64
				if err := tx.QueryRow(ctx, "INSERT INTO notes (body) VALUES ($1) RETURNING id", fmt.Sprint("note ", i)).Scan(&id); err != nil {
					return err
				}
				var body string
				if err := tx.QueryRow(ctx, "SELECT body FROM notes WHERE id = $1", id).Scan(&body); err != nil {
					return err
				}
				if body != fmt.Sprint("note ", i) {
					return fmt.Errorf("read back %q", body)
				}
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := countNotes(t, ctx, pool); got != 40 {
		t.Errorf("%d notes, want 40", got)
	}
}

// showPools returns SHOW POOLS as one map per row.
func showPools(t *testing.T, ctx context.Context) []map[string]any {
	t.Helper()
	admin := testenv.ConnectAdmin(t)
	defer admin.Close(context.Background())
	rows, err := admin.Query(ctx, "SHOW POOLS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var pools []map[string]any
	for rows.Next() {
		values, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		row := map[string]any{}
		for i, fd := range rows.FieldDescriptions() {
			row[fd.Name] = values[i]
		}
		pools = append(pools, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return pools
}

func TestPgBouncerShowPools(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db := testenv.NewDatabase(t)
	pool := pooled(t, ctx, db.PooledURL)
	if err := pool.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	pools := showPools(t, ctx)
	for _, p := range pools {
		if p["database"] == db.Name {
			if p["pool_mode"] != "transaction" {
				t.Errorf("pool_mode = %v, want transaction", p["pool_mode"])
			}
			return
		}
	}
	t.Errorf("SHOW POOLS lists no pool for %s: %v", db.Name, pools)
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	ctx := testContext(t)
	var name string
	t.Run("uses a database", func(t *testing.T) {
		db := testenv.NewDatabase(t)
		name = db.Name
		pool := pooled(t, ctx, db.PooledURL)
		if _, err := pool.Exec(ctx, "INSERT INTO notes (body) VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
	})
	conn := connect(t, ctx, testenv.Stack(t).DirectURL)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test", name)
	}
	// PgBouncer closed its server connections to it before the drop.
	for _, p := range showPools(t, ctx) {
		if p["database"] == name && (p["sv_idle"] != int64(0) || p["sv_active"] != int64(0)) {
			t.Errorf("PgBouncer still holds server connections to %s: %v", name, p)
		}
	}
}

func TestNewRedis(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	clients := make([]*redis.Client, 2)
	for i := range clients {
		opts, err := redis.ParseURL(testenv.NewRedis(t))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = redis.NewClient(opts)
		t.Cleanup(func() { clients[i].Close() })
		if err := clients[i].Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := clients[0].Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := clients[1].Get(ctx, "k").Err(); err != redis.Nil {
		t.Errorf("second Redis sees the first one's key: err = %v", err)
	}
}

// The tests below stop or restart the shared services, so they do not call
// t.Parallel: Go runs them before any parallel test resumes.

func TestStopStartRedis(t *testing.T) {
	ctx := testContext(t)
	s := testenv.Stack(t)
	opts, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	client := redis.NewClient(opts)
	defer client.Close()
	if err := client.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.StopRedis(ctx); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded with Redis stopped")
	}
	if err := s.StartRedis(ctx); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after StartRedis: %v", err)
	}
	if err := client.Get(ctx, "before").Err(); err != redis.Nil {
		t.Errorf("restarted Redis should be empty: GET before: %v", err)
	}
}

// eventually retries f until it succeeds or 20 seconds pass.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRestartServices restarts PgBouncer, then PostgreSQL, under a pool: data is kept, the
// pool works again once its broken connections are replaced, and the harness itself (a new
// database, PgBouncer's admin console) survives.
func TestRestartServices(t *testing.T) {
	for _, tc := range []struct {
		service string
		restart func(*devstack.Stack, context.Context) error
	}{
		{"pgbouncer", (*devstack.Stack).RestartPgBouncer},
		{"postgres", (*devstack.Stack).RestartPostgres},
	} {
		t.Run(tc.service, func(t *testing.T) {
			ctx := testContext(t)
			db := testenv.NewDatabase(t)
			pool := pooled(t, ctx, db.PooledURL)
			if _, err := pool.Exec(ctx, "INSERT INTO notes (body) VALUES ('kept')"); err != nil {
				t.Fatal(err)
			}
			if err := tc.restart(testenv.Stack(t), ctx); err != nil {
				t.Fatal(err)
			}
			// The pool's connections died with the service; new ones work.
			eventually(t, "query through the pool after restarting "+tc.service, func() error {
				var n int
				return pool.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n)
			})
			if got := countNotes(t, ctx, pool); got != 1 {
				t.Errorf("%d notes after restart, want 1", got)
			}
			other := testenv.NewDatabase(t)
			if got := countNotes(t, ctx, connect(t, ctx, other.DirectURL)); got != 0 {
				t.Errorf("new database holds %d notes, want 0", got)
			}
			showPools(t, ctx)
		})
	}
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	testenv.Stack(t) // skip with -short
	ctx := testContext(t)
	addrs, stop, err := devstack.StartRedisCluster(ctx, t.TempDir(), [3]int{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	if len(addrs) != 3 {
		t.Fatalf("addrs = %v, want 3", addrs)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		info, err := c.ClusterInfo(ctx).Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
			t.Errorf("node %s: cluster info:\n%s", a, info)
		}
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	for i := range 30 {
		key := fmt.Sprintf("key-%d", i)
		if err := cc.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		got, err := cc.Get(ctx, key).Int()
		if err != nil || got != i {
			t.Fatalf("GET %s = %d, %v; want %d", key, got, err, i)
		}
	}
	// The keys spread over the masters.
	var mu sync.Mutex
	holding := 0
	err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		if n > 0 {
			mu.Lock()
			holding++
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if holding < 2 {
		t.Errorf("keys landed on %d masters, want them spread", holding)
	}
}

func TestManyParallelDatabases(t *testing.T) {
	t.Parallel()
	for i := range 24 {
		t.Run(fmt.Sprint("db", i), func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			db := testenv.NewDatabase(t)
			pool := pooled(t, ctx, db.PooledURL)
			for j := range 5 {
				if _, err := pool.Exec(ctx, "INSERT INTO notes (body) VALUES ($1)", fmt.Sprint(i, "/", j)); err != nil {
					t.Fatal(err)
				}
			}
			if got := countNotes(t, ctx, pool); got != 5 {
				t.Errorf("%d notes, want 5", got)
			}
		})
	}
}
