package cache_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/testenv"
)

// positionStore is a store whose MessagePages records the WAL position its reads carry: the
// tests below are about the cache's own bookkeeping of positions, not about the database.
type positionStore struct {
	chat.Store
	mu   sync.Mutex
	seen []string
}

func (s *positionStore) MessagePages(ctx context.Context, keys []chat.PageKey) ([]chat.Page, error) {
	s.mu.Lock()
	s.seen = append(s.seen, positionString(ctx))
	s.mu.Unlock()
	return make([]chat.Page, len(keys)), nil
}

func positionString(ctx context.Context) string {
	if pos, ok := chat.ReadPosition(ctx); ok {
		return fmt.Sprint(pos)
	}
	return "none"
}

func newPositionCache(t *testing.T) (*cache.Store, *positionStore) {
	t.Helper()
	return newPositionCacheWith(t, nil)
}

func newPositionCacheWith(t *testing.T, position func(context.Context) (uint64, error)) (*cache.Store, *positionStore) {
	t.Helper()
	rdb, err := redisclient.Open(testenv.NewRedis(t), redisclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	breaker := redisclient.NewBreaker(redisclient.BreakerConfig{OpenTimeout: 300 * time.Millisecond, CallTimeout: time.Second})
	inner := &positionStore{}
	h := cache.NewStore(inner, rdb, breaker, cache.Config{Position: position})
	t.Cleanup(h.Close)
	return h, inner
}

// TestTokenPositions: a conversation's token keeps the greatest position of the bumps that
// moved it, in whatever order they land, and none after a bump without one or when a reader
// created it.
func TestTokenPositions(t *testing.T) {
	t.Parallel()
	h, _ := newPositionCache(t)
	for i, tc := range []struct {
		name  string
		bumps []uint64 // 0: a bump without a position
		want  string
	}{
		{"created by a reader", nil, "none"},
		{"one write", []uint64{100}, "100"},
		{"in commit order", []uint64{50, 100}, "100"},
		{"out of commit order", []uint64{100, 50}, "100"},
		{"a bump without a position last", []uint64{100, 0}, "none"},
		{"a position after one without", []uint64{0, 70}, "70"},
		{"past 32 bits", []uint64{1 << 40, 1<<33 + 5}, fmt.Sprint(uint64(1 << 40))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conv := int64(1000 + i)
			ctx := context.Background()
			for _, pos := range tc.bumps {
				h.InvalidateAt(ctx, conv, pos)
			}
			if got := positionString(h.WithReadPosition(ctx, conv)); got != tc.want {
				t.Errorf("position after bumps %v = %s, want %s", tc.bumps, got, tc.want)
			}
		})
	}
}

// TestMissCarriesPosition: a miss reads the store at the greatest position of its tokens, and
// without one when a token has none.
func TestMissCarriesPosition(t *testing.T) {
	t.Parallel()
	h, inner := newPositionCache(t)
	ctx := context.Background()
	h.InvalidateAt(ctx, 1, 77)
	h.InvalidateAt(ctx, 2, 99)
	for _, keys := range [][]chat.PageKey{
		{{ConversationID: 1, Limit: 5}},
		{{ConversationID: 1, Limit: 6}, {ConversationID: 2, Limit: 6}},
		{{ConversationID: 1, Limit: 7}, {ConversationID: 3, Limit: 7}}, // 3's token is created by the read
	} {
		if _, err := h.MessagePages(ctx, keys); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"77", "99", "none"}, inner.seen); diff != "" {
		t.Errorf("positions of the store's reads (-want +got):\n%s", diff)
	}
}

// TestMissGivesPosition: with Config.Position, a miss under a token without a position gives it
// the primary's position, and reads at it; unless the token moved in the meantime, when a
// write's bump is left as it landed.
func TestMissGivesPosition(t *testing.T) {
	t.Parallel()
	var h *cache.Store
	calls := 0
	primary := func(ctx context.Context) (uint64, error) {
		calls++
		if calls == 2 {
			// Conversation 2 is written while its miss asks the primary where it is.
			h.InvalidateAt(ctx, 2, 600)
		}
		return 500, nil
	}
	h, inner := newPositionCacheWith(t, primary)
	ctx := context.Background()
	h.InvalidateAt(ctx, 3, 70) // already has a position: left as it is
	for _, conv := range []int64{1, 2, 3} {
		if _, err := h.MessagePages(ctx, []chat.PageKey{{ConversationID: conv, Limit: 5}}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, conv := range []int64{1, 2, 3} {
		got = append(got, positionString(h.WithReadPosition(ctx, conv)))
	}
	if diff := cmp.Diff([]string{"500", "600", "70"}, got); diff != "" {
		t.Errorf("tokens' positions after the misses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"500", "none", "70"}, inner.seen); diff != "" {
		t.Errorf("positions of the store's reads (-want +got):\n%s", diff)
	}
}
