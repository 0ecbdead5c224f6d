package loader

import (
	"context"
	"sync"
	"testing"

	"github.com/threadline/threadline/internal/chat"
)

// nilStore is a Store none of whose methods may run: building Loaders only takes method values.
type nilStore struct{ chat.Store }

func TestWithLazy(t *testing.T) {
	f := NewFactory(nilStore{}, Config{})
	t.Run("built once for concurrent resolvers", func(t *testing.T) {
		ctx := f.WithLazy(context.Background(), 7)
		got := make([]*Loaders, 16)
		var wg sync.WaitGroup
		for i := range got {
			wg.Go(func() { got[i] = For(ctx) })
		}
		wg.Wait()
		for i, l := range got {
			if l == nil || l != got[0] {
				t.Fatalf("For #%d = %p, want the one Loaders %p", i, l, got[0])
			}
		}
		if got[0].viewerID != 7 {
			t.Errorf("viewerID = %d, want 7", got[0].viewerID)
		}
	})
	t.Run("not built until asked for", func(t *testing.T) {
		ctx := f.WithLazy(context.Background(), 7)
		if z := ctx.Value(ctxKey{}).(*lazyLoaders); z.l != nil {
			t.Error("Loaders built before any For")
		}
	})
	t.Run("each context its own", func(t *testing.T) {
		a, b := For(f.WithLazy(context.Background(), 7)), For(f.WithLazy(context.Background(), 7))
		if a == b {
			t.Error("two lazy contexts share Loaders")
		}
	})
	t.Run("eager", func(t *testing.T) {
		l := f.New(3)
		if got := For(With(context.Background(), l)); got != l {
			t.Errorf("For = %p, want %p", got, l)
		}
	})
	t.Run("none panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("For without Loaders did not panic")
			}
		}()
		For(context.Background())
	})
}
