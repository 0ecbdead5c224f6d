package loader

import (
	"context"
	"sync"
	"time"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
)

// Bounds of a sidebar batch (see sidebarBatcher).
const (
	// sidebarMaxBatch caps the viewers of one statement: 4,096 ids are 32 KiB of parameters and
	// the rows a few hundred KiB, while a conversation with more subscribers on the instance
	// than that still costs a handful of round trips per event, not one per subscriber.
	sidebarMaxBatch = 4096
	// sidebarTimeout bounds a batch's statement, which runs for all its waiters and so outlives
	// any one of them that stops waiting.
	sidebarTimeout = 10 * time.Second
)

// SidebarConversation reads conversation id as the viewer sees it now, with their read position
// and unread count, for an event of their sidebar stream (viewerEvents); ErrNotFound when it is
// missing or the viewer is not a member.
//
// Every subscriber on the instance of a conversation receives an event of its own for each of
// its events, and each reads the conversation: the reads of all viewers of one conversation go
// out together, through the instance's sidebarBatcher, as one statement
// (chat.Store.ConversationForMembers). The result is exactly what the viewer's own read would
// have been when they asked, or later (see sidebarBatcher); the conversation's last message is
// read once for the batch (chat.Conversation.LatestPage).
func SidebarConversation(ctx context.Context, id int64) (*chat.Conversation, error) {
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	c, err := For(ctx).factory.sidebar.load(ctx, id, viewer)
	if err == nil && c == nil {
		return nil, apperr.ErrNotFound
	}
	return c, err
}

// sidebarBatcher reads conversations for many viewers at once, one statement per batch, and is
// shared by every operation of the instance: it shares round trips, never results. Each
// result is read by a statement that started after its request was made, as the viewer's own
// read would have been, so it shows everything committed before the request (the event that
// led to it included), its membership too: a viewer removed before the statement ran gets no
// row, hence ErrNotFound, as with a read of their own. Nothing is kept after a batch.
//
// The batching is group commit, not a time window: while a conversation's statement is in
// flight, the requests for it that arrive queue, and the next statement takes them all (up to
// sidebarMaxBatch). A request never joins a statement already sent, which may have read before
// its event was committed. A lone request therefore waits for no timer, and the many requests
// of one event on a busy conversation cost as many statements as round trips fit in the time
// they take to arrive, not one each.
type sidebarBatcher struct {
	cfg   Config
	store chat.Store

	mu     sync.Mutex
	queues map[int64]*sidebarQueue // conversation id → requests not yet sent, while a batch runs
}

type sidebarQueue struct {
	waiting []*sidebarRequest
}

type sidebarRequest struct {
	ctx    context.Context
	viewer int64
	done   chan struct{}
	conv   *chat.Conversation
	err    error
}

func newSidebarBatcher(store chat.Store, cfg Config) *sidebarBatcher {
	return &sidebarBatcher{cfg: cfg, store: store, queues: map[int64]*sidebarQueue{}}
}

// load queues a request and waits for its batch, or for ctx.
func (b *sidebarBatcher) load(ctx context.Context, conversationID, viewer int64) (*chat.Conversation, error) {
	r := &sidebarRequest{ctx: ctx, viewer: viewer, done: make(chan struct{})}
	b.mu.Lock()
	q, running := b.queues[conversationID]
	if !running {
		q = &sidebarQueue{}
		b.queues[conversationID] = q
	}
	q.waiting = append(q.waiting, r)
	b.mu.Unlock()
	if !running {
		go b.run(conversationID, q)
	}
	select {
	case <-r.done:
		return r.conv, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run sends conversationID's batches one after the other until no request waits.
func (b *sidebarBatcher) run(conversationID int64, q *sidebarQueue) {
	for {
		b.mu.Lock()
		n := min(len(q.waiting), sidebarMaxBatch)
		if n == 0 {
			delete(b.queues, conversationID)
			b.mu.Unlock()
			return
		}
		batch := q.waiting[:n:n]
		if n == len(q.waiting) {
			q.waiting = nil
		} else {
			q.waiting = append([]*sidebarRequest(nil), q.waiting[n:]...)
		}
		b.mu.Unlock()
		b.serve(conversationID, batch)
	}
}

// serve reads one batch and answers its requests. Requests whose context has ended are left
// out; each viewer is asked for once however many of their streams wait.
func (b *sidebarBatcher) serve(conversationID int64, batch []*sidebarRequest) {
	var ctx context.Context
	viewers := make([]int64, 0, len(batch))
	seen := make(map[int64]bool, len(batch))
	for _, r := range batch {
		if r.ctx.Err() != nil {
			continue
		}
		if ctx == nil {
			ctx = r.ctx
		}
		if !seen[r.viewer] {
			seen[r.viewer] = true
			viewers = append(viewers, r.viewer)
		}
	}
	if ctx == nil {
		return // nobody waits
	}
	// The statement serves every waiter: it keeps the first one's values (request id, logger)
	// but not its cancellation.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sidebarTimeout)
	defer cancel()
	convs, err := fetchBatch(ctx, b.cfg, "sidebar", func(ctx context.Context, viewers []int64) ([]*chat.Conversation, error) {
		return b.store.ConversationForMembers(ctx, conversationID, viewers)
	}, viewers)
	byViewer := make(map[int64]*chat.Conversation, len(viewers))
	if err == nil {
		latest := &latestPage{b: b, conversationID: conversationID}
		for i, v := range viewers {
			if convs[i] != nil {
				convs[i].LatestPage = latest.get
				byViewer[v] = convs[i]
			}
		}
	}
	for _, r := range batch {
		if err != nil {
			r.err = err
		} else if c := byViewer[r.viewer]; c != nil {
			cp := *c // a value of its own for each stream, whose event owns it
			r.conv = &cp
		}
		close(r.done)
	}
}

// latestPage reads a conversation's newest page of one message for a batch, once: by the first
// of its events that asks, after the batch was read, so the page is as new as each of them
// would have read it. A read that fails is not kept: the next asker tries again.
type latestPage struct {
	b              *sidebarBatcher
	conversationID int64

	mu   sync.Mutex
	done bool
	page chat.Page
}

func (l *latestPage) get(ctx context.Context) (chat.Page, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return l.page, nil
	}
	pages, err := fetchBatch(ctx, l.b.cfg, "pages", l.b.store.MessagePages, []chat.PageKey{{ConversationID: l.conversationID, Limit: 1}})
	if err != nil {
		return chat.Page{}, err
	}
	l.page, l.done = pages[0], true
	return l.page, nil
}
