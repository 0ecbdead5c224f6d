package live

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/testenv"
)

// viewerEvent is a sidebar event as a test compares it.
type viewerEvent struct {
	Kind string
	Conv int64
}

func describe(ev chat.ViewerEvent) (viewerEvent, string) {
	switch ev := ev.(type) {
	case *chat.ConversationActivity:
		return viewerEvent{"activity", ev.ConversationID}, ev.Position
	case *chat.ConversationJoined:
		return viewerEvent{"joined", ev.ConversationID}, ev.Position
	case *chat.ConversationLeft:
		return viewerEvent{"left", ev.ConversationID}, ev.Position
	case *chat.ReadStateChanged:
		return viewerEvent{"read", ev.ConversationID}, ev.Position
	}
	return viewerEvent{Kind: fmt.Sprintf("%T", ev)}, ""
}

// next reads n events from a sidebar stream.
func next(t *testing.T, ch <-chan chat.ViewerEvent, n int) (evs []viewerEvent, positions []string) {
	t.Helper()
	for len(evs) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended after %v", evs)
			}
			e, pos := describe(ev)
			evs, positions = append(evs, e), append(positions, pos)
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out after %v", evs)
		}
	}
	return evs, positions
}

func quietViewer(t *testing.T, ch <-chan chat.ViewerEvent) {
	t.Helper()
	select {
	case ev := <-ch:
		e, _ := describe(ev)
		t.Fatalf("unexpected %v", e)
	case <-time.After(200 * time.Millisecond):
	}
}

// One stream over all the viewer's conversations: activity in any of them, a conversation
// joined and left, a read position moved; nothing about conversations that are not theirs, nor
// about reactions. Resuming from a position replays exactly what followed it.
func TestViewerStream(t *testing.T) {
	t.Parallel()
	url := testenv.NewRedis(t)
	store := newMemStore()
	const viewer = 7
	store.conversation(1, viewer, 8)
	store.conversation(2, viewer, 8)
	store.conversation(3, 8)
	a := newTestHub(t, testenv.RedisClient(t, url), store)
	b := newTestHub(t, testenv.RedisClient(t, url), store)
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := b.SubscribeViewer(ctx, viewer, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishUser := func(ev *chat.UserEvent) { a.PublishUser(ctx, ev) }
	a.Publish(ctx, store.commit(1, "one"))
	a.Publish(ctx, store.commit(3, "not the viewer's"))
	a.Publish(ctx, store.react(1))
	a.Publish(ctx, store.commit(2, "two"))
	added, joined := store.add(3, viewer)
	a.Publish(ctx, added)
	publishUser(joined)
	a.Publish(ctx, store.commit(3, "three"))
	publishUser(store.read(1, viewer, 1))
	removed, left := store.removeUser(2, viewer)
	a.Publish(ctx, removed)
	publishUser(left)
	a.Publish(ctx, store.commit(2, "after leaving"))
	a.Publish(ctx, store.commit(1, "one again"))

	got, positions := next(t, stream, 7)
	want := []viewerEvent{{"activity", 1}, {"activity", 2}, {"joined", 3}, {"activity", 3}, {"read", 1}, {"left", 2}, {"activity", 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	quietViewer(t, stream)
	cancel()

	// Resume after the third event (joined 3); more happens while nobody listens.
	pos, err := chat.DecodeViewerPosition("after", viewer, positions[2])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int64]int64{1: 2, 2: 1, 3: 2}, pos.Conversations); diff != "" {
		t.Fatalf("position (-want +got):\n%s", diff)
	}
	store.commit(1, "missed")
	store.commit(3, "missed")
	store.read(3, viewer, 2)
	store.removeUser(3, viewer)
	store.add(2, viewer)
	store.commit(2, "back")
	resumed, err := b.SubscribeViewer(t.Context(), viewer, &pos, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = next(t, resumed, 10)
	// First the conversations still followed, each caught up in its order ("one again",
	// "missed"; conversation 2 up to the viewer's removal), then the viewer's own events in
	// theirs; a conversation left is caught up to the leaving ("three", "missed") before its
	// ConversationLeft, and one joined is followed from the joining ("back").
	want = []viewerEvent{
		{"activity", 1}, {"activity", 1},
		{"read", 1}, {"left", 2}, {"read", 3}, {"activity", 3}, {"activity", 3}, {"left", 3},
		{"joined", 2}, {"activity", 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("resumed events (-want +got):\n%s", diff)
	}
	quietViewer(t, resumed)
}

func TestViewerStreamPositions(t *testing.T) {
	t.Parallel()
	url := testenv.NewRedis(t)
	store := newMemStore()
	store.conversation(1, 7)
	store.commit(1, "one")
	store.read(1, 7, 1)
	h := newTestHub(t, testenv.RedisClient(t, url), store)
	for _, c := range []struct {
		name string
		pos  chat.ViewerPosition
		code apperr.Code
	}{
		{"user events ahead", chat.ViewerPosition{Viewer: 7, User: 2, Conversations: map[int64]int64{1: 1}}, apperr.BadUserInput},
		{"conversation ahead", chat.ViewerPosition{Viewer: 7, User: 1, Conversations: map[int64]int64{1: 2}}, apperr.BadUserInput},
	} {
		if _, err := h.SubscribeViewer(t.Context(), 7, &c.pos, nil); codeOf(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	// A position older than the events kept.
	store.read(1, 7, 1)
	store.mu.Lock()
	store.pruned[7] = 1
	store.mu.Unlock()
	old := chat.ViewerPosition{Viewer: 7, User: 0, Conversations: map[int64]int64{1: 1}}
	_, err := h.SubscribeViewer(t.Context(), 7, &old, nil)
	if codeOf(err) != apperr.PositionExpired {
		t.Fatalf("%v, want %s", err, apperr.PositionExpired)
	}
}
