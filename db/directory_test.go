package db_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/testenv"
)

// TestUserDirectoryUsesIndexes: at 10,000 users, vacuumed and analyzed, the directory query reads an
// index for every kind of search it can serve so (everyone, a frequent letter, a part of a name,
// one that matches nothing), from the start and after a cursor, with the planner free to choose
// a sequential scan (unlike TestQueriesUseIndexes, which forbids them to see whether an index
// serves at all).
func TestUserDirectoryUsesIndexes(t *testing.T) {
	t.Parallel()
	d, direct := dbtest.NewDatabase(t)
	ctx := context.Background()
	dbtest.Directory(t, direct, 10000)
	// Statistics, and the trigram index's pending list merged, as autovacuum keeps them: right
	// after a bulk insert the new entries wait in the list, which the planner rightly prices
	// above a sequential scan of this small table.
	dbtest.Analyze(t, direct, "users")

	pool, plans := explainingPool(t, d.DirectURL, "")
	store := db.NewStore(pool)

	// Searches of three characters or more (one trigram at least), frequent or rare, and shorter
	// ones that match many users (the ordered index finds a page early). A short search that
	// matches few users reads every row whatever the plan: there is no trigram to look up.
	for _, search := range []string{"", "k", "ka", "kalo", "lo ber1", "ber1", "zzz", "émile", "mile å"} {
		for _, after := range []*chat.UserCursor{nil, {Name: "mine gor2", ID: 5000}} {
			plans.take()
			users, err := store.SearchUsers(ctx, search, after, 101)
			if err != nil {
				t.Fatalf("search %q: %v", search, err)
			}
			got := plans.take()
			if len(got) != 1 {
				t.Errorf("search %q after %v: %d plans reported", search, after, len(got))
			}
			for _, plan := range got {
				if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, "users_name") {
					t.Errorf("search %q after %v (%d users) reads the whole table:\n%s", search, after, len(users), plan)
				}
			}
		}
	}
}

// planLog collects the plans auto_explain reports as notices.
type planLog struct {
	mu    sync.Mutex
	plans []string
}

// take returns the plans reported since the last take and forgets them.
func (l *planLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.plans
	l.plans = nil
	return out
}

// seededExplainingPool seeds a database of the test's own (50 conversations of 50 to 80
// messages, user 1 a member of all) and returns explainingPool's pool on it, with sequential
// scans off (on tables this small, one would look as cheap as an index) and then settings.
func seededExplainingPool(t *testing.T, settings string) (*pgxpool.Pool, *planLog) {
	t.Helper()
	d := testenv.NewDatabase(t)
	small := db.SeedSize{Users: 20, Conversations: 50, MinMessages: 50, MaxMessages: 80, MinMembers: 2, MaxMembers: 5, DemoMemberOf: 50}
	if _, err := db.Seed(context.Background(), d.DirectURL, small, 1); err != nil {
		t.Fatal(err)
	}
	return explainingPool(t, d.DirectURL, "SET enable_seqscan = off; "+settings)
}

// explainingPool opens a pool of one connection to url (the exec mode PgBouncer needs) on
// which auto_explain reports the plan of every statement to the returned log; settings (SQL,
// may be "") run on the connection after auto_explain is loaded. The pool is closed when the
// test ends.
func explainingPool(t testing.TB, url, settings string) (*pgxpool.Pool, *planLog) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	log := &planLog{}
	cfg.MaxConns = 1
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec // as through PgBouncer
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if !strings.Contains(n.Message, "Query Text:") {
			return // not a plan: a notice of the statement itself
		}
		log.mu.Lock()
		log.plans = append(log.plans, n.Message)
		log.mu.Unlock()
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_level = 'notice'")
		if err == nil && settings != "" {
			_, err = c.Exec(ctx, settings)
		}
		return err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, log
}
