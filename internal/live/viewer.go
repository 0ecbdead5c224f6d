package live

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

// ErrPositionExpired ends (or refuses) a sidebar stream whose position is older than the events
// kept: the client refetches its conversations and subscribes without a position.
var ErrPositionExpired = apperr.New(apperr.PositionExpired,
	"the position is older than the events kept: refetch the conversations and subscribe without after")

// SubscribeViewer starts viewerID's sidebar stream: one stream over all their conversations,
// carrying a ConversationActivity for every message sent, edited or deleted and every rename in
// any of them, a ConversationJoined when the viewer becomes a member of one, a ConversationLeft
// when they stop being one, and a ReadStateChanged when they move a read position. Each event
// carries the position after it; with after, the stream first replays exactly what followed
// that position, then continues live. Reactions and other members coming and going move the
// position without an event.
//
// # How
//
// The stream follows the topics of the viewer's conversations and the viewer's own topic (their
// UserEvents), and keeps, per stream, the last event_seq handled: the position is that vector
// (chat.ViewerPosition). Each stream is gap-free and in commit order, so each is handled as a
// conversation subscription is (gaps filled from PostgreSQL, a resubscribed Redis channel
// checked), and nothing is written per member when a message is sent. It attaches to the
// topics first and reads where to start after, so nothing falls between.
//
// A conversation the viewer leaves is followed up to the event that removed them (its
// activities before that are delivered), then the ConversationLeft is delivered and the
// conversation is no longer followed. A conversation they join is announced, then followed from
// the event that added them.
//
// It ends as SubscribeMessages does: onEnd is called with nil (ctx ended, hub closed), a
// *ResumeError carrying the position of the last event delivered (the consumer fell behind),
// ErrPositionExpired, or an internal error. A position that is not after is BAD_USER_INPUT
// (chat.DecodeViewerPosition checks its form and owner; this checks it against the streams).
func (h *Hub) SubscribeViewer(ctx context.Context, viewerID int64, after *chat.ViewerPosition, onEnd func(error)) (<-chan chat.ViewerEvent, error) {
	vs := &viewerSub{
		hub: h, viewer: viewerID, in: make(chan viewerItem, h.cfg.Buffer), cut: make(chan struct{}),
		out: make(chan chat.ViewerEvent), convs: map[int64]*followed{},
	}
	user, err := h.attach(ctx, vs, stream{user: true, id: viewerID})
	if err != nil {
		return nil, err
	}
	vs.user = user
	start, err := vs.start(ctx, after)
	if err != nil {
		vs.detachAll()
		return nil, err
	}
	h.m.active.Inc()
	go vs.run(ctx, start, onEnd)
	return vs.out, nil
}

// viewerSub is one sidebar stream, a sink on many topics.
type viewerSub struct {
	hub     *Hub
	viewer  int64
	in      chan viewerItem
	cut     chan struct{}
	cutOnce sync.Once
	out     chan chat.ViewerEvent

	// The goroutine of start, then of run, only:
	user     *topic
	userLast int64
	convs    map[int64]*followed
	lastPos  string // position of the last event delivered
}

// followed is a conversation of the stream: the last of its events handled, and its topic while
// the viewer is a member (nil once an event removed them, until their ConversationLeft).
type followed struct {
	last  int64
	topic *topic
	// leaving is set for a conversation of a resumed position that the viewer is no longer a
	// member of: it is caught up to their UserLeft, and dropped if none comes in the replay.
	leaving bool
}

type viewerItem struct {
	t    *topic
	item any
}

func (vs *viewerSub) offer(t *topic, item any) bool {
	select {
	case vs.in <- viewerItem{t, item}:
		return true
	default:
		return false
	}
}

func (vs *viewerSub) cutOff() {
	vs.cutOnce.Do(func() {
		close(vs.cut)
		vs.hub.m.cutoffs.Inc()
	})
}

// start reads where the stream starts and attaches to the conversations it follows. It returns
// what run does first: the catch-up of what was committed before the topics were attached.
func (vs *viewerSub) start(ctx context.Context, after *chat.ViewerPosition) (func(context.Context) error, error) {
	h := vs.hub
	qctx, cancel := context.WithTimeout(ctx, h.cfg.QueryTimeout)
	last, firstKept, now, err := h.store.UserStreamStart(qctx, vs.viewer)
	cancel()
	if err != nil {
		return nil, err
	}
	from := now // where each followed conversation starts
	if after == nil {
		vs.userLast = last
	} else {
		switch {
		case after.User > last:
			return nil, apperr.Invalid("after", "is not a position of this stream")
		case firstKept > 0 && after.User < firstKept-1:
			return nil, ErrPositionExpired
		}
		vs.userLast = after.User
		from = make(map[int64]int64, len(after.Conversations))
		for c, seq := range after.Conversations {
			cur, member := now[c]
			switch {
			case member && seq > cur:
				return nil, apperr.Invalid("after", "is not a position of this stream")
			case member:
				from[c] = seq
			default:
				vs.convs[c] = &followed{last: seq, leaving: true}
			}
		}
	}
	ids := slices.Sorted(maps.Keys(from))
	keys := make([]stream, len(ids))
	for i, c := range ids {
		keys[i] = stream{id: c}
	}
	topics, err := h.attachAll(ctx, vs, keys)
	if err != nil {
		return nil, err
	}
	for i, c := range ids {
		vs.convs[c] = &followed{last: from[c], topic: topics[i]}
	}
	// Attached and confirmed: what is committed from here on arrives. Read again what each
	// conversation is at, and catch up, in run, those that moved since from.
	qctx, cancel = context.WithTimeout(ctx, h.cfg.QueryTimeout)
	_, _, now, err = h.store.UserStreamStart(qctx, vs.viewer)
	cancel()
	if err != nil {
		return nil, err
	}
	var behind []int64
	for _, c := range ids {
		if cur, member := now[c]; !member || cur > from[c] {
			behind = append(behind, c)
		}
	}
	return func(ctx context.Context) error {
		for _, c := range behind {
			if err := vs.catchUpConversation(ctx, c, maxSeq); err != nil {
				return err
			}
		}
		if err := vs.catchUpUser(ctx, maxSeq); err != nil {
			return err
		}
		for c, f := range vs.convs {
			if f.leaving { // no UserLeft in the replay: not a conversation of this viewer's
				delete(vs.convs, c)
			}
		}
		return nil
	}, nil
}

// run replays, then follows the topics until the stream ends, then tells onEnd why.
func (vs *viewerSub) run(ctx context.Context, start func(context.Context) error, onEnd func(error)) {
	err := start(ctx)
	if err == nil {
		err = vs.loop(ctx)
	}
	vs.detachAll()
	vs.hub.m.active.Dec()
	if err != nil && !errors.Is(err, errStopped) {
		var resume *ResumeError
		switch {
		case errors.As(err, &resume):
			vs.hub.log.InfoContext(ctx, "live: slow sidebar stream cut off", "viewer", vs.viewer)
		case apperr.Public(err) != nil:
		default:
			vs.hub.log.ErrorContext(ctx, "live: sidebar stream failed", "viewer", vs.viewer, "err", err)
		}
	} else {
		err = nil
	}
	if onEnd != nil {
		onEnd(err)
	}
	close(vs.out)
}

func (vs *viewerSub) detachAll() {
	if vs.user != nil {
		vs.hub.detach(vs, vs.user)
		vs.user = nil
	}
	for _, f := range vs.convs {
		if f.topic != nil {
			vs.hub.detach(vs, f.topic)
			f.topic = nil
		}
	}
}

func (vs *viewerSub) loop(ctx context.Context) error {
	for {
		select {
		case <-vs.cut:
			return vs.resumeError()
		default:
		}
		select {
		case it := <-vs.in:
			if err := vs.handle(ctx, it); err != nil {
				return err
			}
		case <-vs.cut:
			return vs.resumeError()
		case <-ctx.Done():
			return errStopped
		case <-vs.hub.done:
			return errStopped
		}
	}
}

func (vs *viewerSub) resumeError() error {
	return &ResumeError{Viewer: true, Position: vs.lastPos}
}

// handle takes an item of one of the stream's topics.
func (vs *viewerSub) handle(ctx context.Context, it viewerItem) error {
	if it.t.key.user {
		if it.t != vs.user {
			return nil
		}
		if it.item == resyncMarker {
			return vs.catchUpUser(ctx, maxSeq)
		}
		if pm, ok := it.item.(*pollMark); ok {
			if pm.EventSeq <= vs.userLast {
				return nil
			}
			before := vs.userLast
			err := vs.catchUpUser(ctx, pm.EventSeq)
			vs.hub.m.pollDeliveries.Add(float64(vs.userLast - before))
			return err
		}
		ev := it.item.(*chat.UserEvent)
		if ev.EventSeq <= vs.userLast {
			return nil
		}
		if ev.EventSeq > vs.userLast+1 {
			vs.hub.m.gapFills.Inc()
			if err := vs.catchUpUser(ctx, ev.EventSeq-1); err != nil {
				return err
			}
		}
		return vs.processUser(ctx, ev)
	}
	c := it.t.key.id
	f := vs.convs[c]
	if f == nil || f.topic != it.t {
		return nil // no longer followed
	}
	if it.item == resyncMarker {
		return vs.catchUpConversation(ctx, c, maxSeq)
	}
	if pm, ok := it.item.(*pollMark); ok {
		if pm.EventSeq <= f.last {
			return nil
		}
		before := f.last
		err := vs.catchUpConversation(ctx, c, pm.EventSeq)
		vs.hub.m.pollDeliveries.Add(float64(f.last - before))
		return err
	}
	ev := it.item.(chat.Event)
	seq := ev.Header().EventSeq
	if seq <= f.last {
		return nil
	}
	if seq > f.last+1 {
		vs.hub.m.gapFills.Inc()
		if err := vs.catchUpConversation(ctx, c, seq-1); err != nil {
			return err
		}
		if f.topic == nil {
			return nil // the gap removed the viewer
		}
	}
	return vs.processConversation(ctx, c, ev)
}

// processConversation handles the next event of a followed conversation.
func (vs *viewerSub) processConversation(ctx context.Context, c int64, ev chat.Event) error {
	f := vs.convs[c]
	f.last = ev.Header().EventSeq
	switch ev := ev.(type) {
	case *chat.MessageAdded, *chat.MessageEdited, *chat.MessageDeleted, *chat.ConversationRenamed:
		return vs.deliver(ctx, &chat.ConversationActivity{ConversationID: c})
	case *chat.MemberRemoved:
		if ev.User.ID == vs.viewer {
			// From here on the viewer is a stranger to the conversation; their UserLeft, in the
			// same transaction, announces it.
			if f.topic != nil {
				vs.hub.detach(vs, f.topic)
				f.topic = nil
			}
		}
	}
	return nil
}

// processUser handles the viewer's next own event.
func (vs *viewerSub) processUser(ctx context.Context, ev *chat.UserEvent) error {
	vs.userLast = ev.EventSeq
	c := ev.ConversationID
	f := vs.convs[c]
	switch ev.Kind {
	case chat.UserJoined:
		if f != nil && f.topic != nil {
			return vs.deliver(ctx, &chat.ConversationJoined{ConversationID: c})
		}
		t, err := vs.hub.attach(ctx, vs, stream{id: c})
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return errStopped
			}
			return err
		}
		vs.convs[c] = &followed{last: ev.ConversationEventSeq, topic: t}
		if err := vs.deliver(ctx, &chat.ConversationJoined{ConversationID: c}); err != nil {
			return err
		}
		return vs.catchUpConversation(ctx, c, maxSeq)
	case chat.UserLeft:
		if f != nil && f.last < ev.ConversationEventSeq {
			if f.topic == nil && !f.leaving {
				return fmt.Errorf("live: conversation %d left at event %d, followed to %d only", c, ev.ConversationEventSeq, f.last)
			}
			f.leaving = false
			if err := vs.catchUpConversation(ctx, c, ev.ConversationEventSeq); err != nil {
				return err
			}
		}
		if f != nil {
			if f.topic != nil {
				vs.hub.detach(vs, f.topic)
			}
			delete(vs.convs, c)
		}
		return vs.deliver(ctx, &chat.ConversationLeft{ConversationID: c})
	case chat.UserRead:
		if f != nil { // followed, or left by an event this stream has not yet announced
			return vs.deliver(ctx, &chat.ReadStateChanged{ConversationID: c})
		}
	}
	return nil
}

// deliver hands ev to the consumer with the position after it.
func (vs *viewerSub) deliver(ctx context.Context, ev chat.ViewerEvent) error {
	pos := chat.ViewerPosition{Viewer: vs.viewer, User: vs.userLast, Conversations: make(map[int64]int64, len(vs.convs))}
	for c, f := range vs.convs {
		pos.Conversations[c] = f.last
	}
	text := chat.EncodeViewerPosition(pos)
	ev.SetStreamPosition(text)
	select {
	case vs.out <- ev:
		vs.lastPos = text
		vs.hub.m.deliveries.Inc()
		return nil
	case <-vs.cut:
		return vs.resumeError()
	case <-ctx.Done():
	case <-vs.hub.done:
	}
	return errStopped
}

// catchUpConversation handles, from PostgreSQL, conversation c's events after the last handled
// up to event_seq upTo (maxSeq: all there are now), stopping where an event removes the viewer.
func (vs *viewerSub) catchUpConversation(ctx context.Context, c, upTo int64) error {
	f := vs.convs[c]
	return catchUp(ctx, vs.hub, &f.last, upTo,
		func(ctx context.Context, after int64, limit int) ([]chat.Event, error) {
			return vs.hub.readEvents(ctx, c, after, limit)
		},
		func(ev chat.Event) int64 { return ev.Header().EventSeq },
		func(ev chat.Event) (bool, error) {
			r, ok := ev.(*chat.MemberRemoved)
			return ok && r.User.ID == vs.viewer, vs.processConversation(ctx, c, ev)
		},
		func(err error) error { return fmt.Errorf("live: conversation %d: %w", c, err) })
}

// catchUpUser handles, from PostgreSQL, the viewer's own events after the last handled up to
// event_seq upTo (maxSeq: all there are now). A hole means the events between are no longer
// kept: the position expired.
func (vs *viewerSub) catchUpUser(ctx context.Context, upTo int64) error {
	err := catchUp(ctx, vs.hub, &vs.userLast, upTo,
		func(ctx context.Context, after int64, limit int) ([]chat.UserEvent, error) {
			ctx, cancel := context.WithTimeout(ctx, vs.hub.cfg.QueryTimeout)
			defer cancel()
			return vs.hub.store.UserEventsAfter(ctx, vs.viewer, after, limit)
		},
		func(ev chat.UserEvent) int64 { return ev.EventSeq },
		func(ev chat.UserEvent) (bool, error) { return false, vs.processUser(ctx, &ev) },
		func(err error) error { return fmt.Errorf("live: user %d: %w", vs.viewer, err) })
	if errors.Is(err, errSeqGap) {
		return ErrPositionExpired
	}
	return err
}
