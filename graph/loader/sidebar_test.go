package loader

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
)

// sidebarStore answers ConversationForMembers from members (conversation → viewer → read
// position), records each call's viewers, and holds each call until release lets it go.
type sidebarStore struct {
	chat.Store
	members map[int64]map[int64]int64
	release chan struct{}
	fail    error

	mu      sync.Mutex
	batches [][]int64
	pages   int
	started chan struct{} // receives once per call, when it has been recorded
}

func (s *sidebarStore) ConversationForMembers(_ context.Context, conversationID int64, userIDs []int64) ([]*chat.Conversation, error) {
	s.mu.Lock()
	s.batches = append(s.batches, slices.Clone(userIDs))
	s.mu.Unlock()
	s.started <- struct{}{}
	<-s.release
	if s.fail != nil {
		return nil, s.fail
	}
	out := make([]*chat.Conversation, len(userIDs))
	for i, u := range userIDs {
		if read, ok := s.members[conversationID][u]; ok {
			unread := 40 - read
			out[i] = &chat.Conversation{ID: conversationID, Title: "t", LastSeq: 40, ViewerLastReadSeq: read, ViewerUnread: &unread}
		}
	}
	return out, nil
}

func (s *sidebarStore) MessagePages(_ context.Context, keys []chat.PageKey) ([]chat.Page, error) {
	s.mu.Lock()
	s.pages++
	s.mu.Unlock()
	out := make([]chat.Page, len(keys))
	for i, k := range keys {
		out[i] = chat.Page{Messages: []chat.Message{{ConversationID: k.ConversationID, Seq: 40, Body: "last"}}, HasMore: true}
	}
	return out, nil
}

// waitQueued waits until n requests for conversation wait behind the batch in flight.
func waitQueued(t *testing.T, b *sidebarBatcher, conversation int64, n int) {
	t.Helper()
	for {
		b.mu.Lock()
		q := b.queues[conversation]
		queued := q != nil && len(q.waiting) == n
		b.mu.Unlock()
		if queued {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

type sidebarResult struct {
	viewer int64
	conv   *chat.Conversation
	err    error
}

// The reads of one conversation queue while its statement is in flight and go out together in
// the next one, each viewer once; every stream gets its own viewer's value (a value of its
// own), a non-member ErrNotFound, and the last message is read once for the batch.
func TestSidebarConversationGroupCommit(t *testing.T) {
	t.Parallel()
	const conv = 7
	store := &sidebarStore{
		members: map[int64]map[int64]int64{conv: {1: 0, 2: 10, 3: 25, 4: 40}},
		release: make(chan struct{}), started: make(chan struct{}, 16),
	}
	f := NewFactory(store, Config{})
	load := func(viewer int64, out chan<- sidebarResult) {
		ctx := auth.WithViewer(context.Background(), viewer)
		ctx = With(ctx, f.New(viewer))
		c, err := SidebarConversation(ctx, conv)
		out <- sidebarResult{viewer, c, err}
	}

	results := make(chan sidebarResult, 16)
	go load(1, results)
	<-store.started // the first statement is in flight, for viewer 1 alone
	queued := []int64{2, 3, 2, 9, 4}
	for _, v := range queued {
		go load(v, results)
	}
	waitQueued(t, f.sidebar, conv, len(queued))
	close(store.release)

	got := map[int64][]*chat.Conversation{}
	errs := map[int64]error{}
	for range 1 + len(queued) {
		r := <-results
		got[r.viewer] = append(got[r.viewer], r.conv)
		if r.err != nil {
			errs[r.viewer] = r.err
		}
	}
	for _, b := range store.batches {
		slices.Sort(b) // the requests queue in the order their goroutines ran
	}
	if diff := cmp.Diff([][]int64{{1}, {2, 3, 4, 9}}, store.batches); diff != "" {
		t.Errorf("statements' viewers (-want +got):\n%s", diff)
	}
	if !errors.Is(errs[9], apperr.ErrNotFound) || len(errs) != 1 {
		t.Errorf("errors: %v, want ErrNotFound for viewer 9 only", errs)
	}
	for v, read := range store.members[conv] {
		for _, c := range got[v] {
			if c == nil || c.ViewerLastReadSeq != read || *c.ViewerUnread != 40-read {
				t.Errorf("viewer %d got %+v, want read position %d", v, c, read)
			}
		}
	}
	if a, b := got[2][0], got[2][1]; a == b {
		t.Error("two streams of one viewer share one value")
	}
	for _, v := range []int64{2, 3, 2, 4} {
		page, err := got[v][0].LatestPage(context.Background())
		if err != nil || len(page.Messages) != 1 || page.Messages[0].Body != "last" {
			t.Fatalf("latest page of viewer %d: %+v %v", v, page, err)
		}
	}
	if store.pages != 1 {
		t.Errorf("the batch's last message was read %d times, want once", store.pages)
	}
	f.sidebar.mu.Lock()
	defer f.sidebar.mu.Unlock()
	if len(f.sidebar.queues) != 0 {
		t.Errorf("queues left after the batches: %v", f.sidebar.queues)
	}
}

// A failed statement fails each of its requests; a request whose context ends stops waiting
// and leaves the batch to the others.
func TestSidebarConversationFailureAndCancel(t *testing.T) {
	t.Parallel()
	const conv = 3
	boom := errors.New("boom")
	store := &sidebarStore{
		members: map[int64]map[int64]int64{conv: {1: 0, 2: 0}},
		release: make(chan struct{}), started: make(chan struct{}, 16), fail: boom,
	}
	f := NewFactory(store, Config{})
	ctxOf := func(ctx context.Context, viewer int64) context.Context {
		return With(auth.WithViewer(ctx, viewer), f.New(viewer))
	}
	results := make(chan sidebarResult, 4)
	go func() {
		_, err := SidebarConversation(ctxOf(context.Background(), 1), conv)
		results <- sidebarResult{viewer: 1, err: err}
	}()
	<-store.started
	cancelled, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := SidebarConversation(ctxOf(cancelled, 2), conv)
		results <- sidebarResult{viewer: 2, err: err}
	}()
	waitQueued(t, f.sidebar, conv, 1)
	cancel()
	if r := <-results; r.viewer != 2 || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled request: %+v", r)
	}
	close(store.release)
	if r := <-results; r.viewer != 1 || !errors.Is(r.err, boom) {
		t.Fatalf("failed statement: %+v", r)
	}
	// The cancelled request was left out: no second statement.
	for {
		f.sidebar.mu.Lock()
		n := len(f.sidebar.queues)
		f.sidebar.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if diff := cmp.Diff([][]int64{{1}}, store.batches); diff != "" {
		t.Errorf("statements' viewers (-want +got):\n%s", diff)
	}
}
