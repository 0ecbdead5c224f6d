package respcache_test

import (
	"context"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/respcache"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{}) }

// TestPendingTokenMovesBypass: a token move that fails (Redis hangs), or that had not returned
// when its mutation answered (Late), makes the instance bypass the cache until a move sent
// afterwards lands: the retry once Redis answers, or the next change's move.
func TestPendingTokenMovesBypass(t *testing.T) {
	t.Parallel()
	url := testenv.NewRedis(t)
	rdb, err := redisclient.Open(url, redisclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	breaker := redisclient.NewBreaker(redisclient.BreakerConfig{OpenTimeout: 200 * time.Millisecond})
	c := respcache.New(rdb, breaker, respcache.Config{})
	t.Cleanup(c.Close)
	ctx := context.Background()
	change := chat.Change{ConversationID: 1, Members: []int64{1, 2}, MembersChanged: []int64{2}}

	c.AfterCommit(ctx, change)
	if c.Bypassed() {
		t.Fatal("bypassed after a move that landed")
	}

	c.Late(change)
	if !c.Bypassed() {
		t.Fatal("not bypassed after a late move")
	}
	c.AfterCommit(ctx, change) // sent after the mark: clears it
	if c.Bypassed() {
		t.Fatal("still bypassed after a later move landed")
	}

	testenv.PauseRedis(t, rdb, 800*time.Millisecond)
	c.AfterCommit(ctx, change) // times out
	if !c.Bypassed() {
		t.Fatal("not bypassed after a move that failed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Bypassed() {
		if time.Now().After(deadline) {
			t.Fatal("still bypassed 10s after Redis answers again")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
