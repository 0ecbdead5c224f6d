package live

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

// A subscriber is one subscription: the events its topic passes on wait in `in` (bounded), and
// its goroutine (run) puts them in event_seq order, fills gaps from PostgreSQL, and hands what
// its stream carries to the consumer: every event (an events stream), or the messages of the
// MessageAdded events (a messages stream).
//
// # Direct delivery
//
// Most events need none of that: each is the one after the last handled, and the consumer's
// channel has room. Waking run's goroutine for them costs a goroutine hand-off per event and
// subscriber, on top of the consumer's own. So while the subscriber is direct, its topic's
// fanout (offer, under the topic's lock) handles such an event itself, as process would, and
// passes everything else (a gap, a resync or poll mark, a MemberRemoved, a full consumer
// channel) to `in`, leaving direct mode; run's goroutine takes over as before, and re-enters
// direct mode only when `in` is empty, under the topic's lock (goDirect). So:
//
//   - one of the two handles events at a time: the topic while direct (under its lock, which
//     it holds for every offer), run's goroutine otherwise; each sees the other's lastEvent and
//     lastSeq through the topic's lock or the send on `in` that hands over;
//   - order is kept: run's goroutine goes direct only after its last send to the consumer has
//     completed and with nothing waiting in `in`, and once the topic has passed an event to
//     `in`, every later one goes there too until run's goroutine has handled them all;
//   - slow subscribers are still bounded: a consumer channel (directBuffer) that is full sends
//     the event to `in`, where Config.Buffer events may wait before the cut-off, as before.
type subscriber struct {
	hub    *Hub
	topic  *topic
	conv   int64
	viewer int64

	in      chan chat.Event
	cut     chan struct{} // closed when in overflowed
	cutOnce sync.Once

	// Exactly one of these is the consumer's channel.
	events   chan chat.Event
	messages chan *chat.Message

	// run's goroutine's, or, while direct, the topic's under its lock (see Direct delivery):
	lastEvent int64 // event_seq of the last event handled
	lastSeq   int64 // messages stream: seq of the last message handed over
	// direct: the topic's offer handles events (see Direct delivery); topic.mu.
	direct bool
}

// directBuffer is the capacity of a subscriber's consumer channel: events handed over directly
// wait there for the consumer.
const directBuffer = 16

// errStopped ends a subscription quietly: its context ended or the hub closed.
var errStopped = errors.New("live: subscription stopped")

// offer passes an event of s's topic on (see sink): handled here while s is direct and the
// event allows it, else to run's goroutine. The topic's lock is held.
func (s *subscriber) offer(_ *topic, item any) bool {
	ev := item.(chat.Event)
	if s.direct && s.handleDirect(ev) {
		return true
	}
	s.direct = false
	select {
	case s.in <- ev:
		return true
	default:
		return false
	}
}

// handleDirect handles ev as handle and process would, when that needs neither PostgreSQL nor
// waiting: ev follows the last event handled (or was handled already), is not a MemberRemoved
// (which may end the subscription), and the consumer's channel has room. False: nothing was
// done, run's goroutine must handle ev. The topic's lock is held and s is direct.
func (s *subscriber) handleDirect(ev chat.Event) bool {
	if ev == resyncMarker {
		return false
	}
	switch ev.(type) {
	case *pollMark, *chat.MemberRemoved:
		return false
	}
	seq := ev.Header().EventSeq
	if seq <= s.lastEvent {
		return true // seen already
	}
	if seq != s.lastEvent+1 {
		return false // a gap, filled from PostgreSQL by run's goroutine
	}
	if s.events != nil {
		select {
		case s.events <- ev:
		default:
			return false
		}
		s.hub.m.deliveries.Inc()
	} else if added, ok := ev.(*chat.MessageAdded); ok && added.Message.Seq > s.lastSeq {
		select {
		case s.messages <- added.Message:
		default:
			return false
		}
		s.hub.m.deliveries.Inc()
		s.lastSeq = added.Message.Seq
	}
	s.lastEvent = seq
	return true
}

// goDirect hands the events that follow to the topic's offer, unless some are waiting in `in`
// (they come first). Called by run's goroutine between events.
func (s *subscriber) goDirect() {
	if len(s.in) > 0 {
		return
	}
	s.topic.mu.Lock()
	if len(s.in) == 0 {
		s.direct = true
	}
	s.topic.mu.Unlock()
}

// cutOff ends the subscription of a subscriber that fell behind. It never blocks.
func (s *subscriber) cutOff() {
	s.cutOnce.Do(func() {
		close(s.cut)
		s.hub.m.cutoffs.Inc()
	})
}

// run replays what the subscription starts with (start), then follows its topic until it ends,
// then tells onEnd why and closes the consumer's channel.
func (s *subscriber) run(ctx context.Context, start func(context.Context) error, onEnd func(error)) {
	err := start(ctx)
	if err == nil {
		err = s.loop(ctx)
	}
	s.hub.detach(s, s.topic)
	s.hub.m.active.Dec()
	if err != nil && !errors.Is(err, errStopped) {
		var resume *ResumeError
		switch {
		case errors.As(err, &resume):
			s.hub.log.InfoContext(ctx, "live: slow subscriber cut off", "conversation_id", s.conv, "after", resume.After)
		case apperr.Public(err) != nil: // removed from the conversation
		default:
			s.hub.log.ErrorContext(ctx, "live: subscription failed", "conversation_id", s.conv, "after_event_seq", s.lastEvent, "err", err)
		}
	} else {
		err = nil
	}
	if onEnd != nil {
		onEnd(err) // before close: the consumer reads the reason once the channel is closed
	}
	if s.events != nil {
		close(s.events)
	} else {
		close(s.messages)
	}
}

func (s *subscriber) loop(ctx context.Context) error {
	for {
		select { // a cut-off wins over events still buffered
		case <-s.cut:
			return s.resumeError()
		default:
		}
		s.goDirect()
		select {
		case ev := <-s.in:
			if err := s.handle(ctx, ev); err != nil {
				return err
			}
		case <-s.cut:
			return s.resumeError()
		case <-ctx.Done():
			return errStopped
		case <-s.hub.done:
			return errStopped
		}
	}
}

// resumeError is the end of a subscriber that was cut off. What still waits in the consumer's
// channel is taken back, so that the consumer receives nothing after the cut-off and the
// position is the last it received: the channel is first in, first out, so when the first
// taken back is seq n, the consumer has received everything up to n-1. The topic no longer
// sends to s (it dropped s before closing cut).
func (s *subscriber) resumeError() error {
	if s.events != nil {
		after := s.lastEvent
		if ev, ok := takeBack(s.events); ok {
			after = ev.Header().EventSeq - 1
		}
		return &ResumeError{ConversationID: s.conv, Events: true, After: after}
	}
	after := s.lastSeq
	if m, ok := takeBack(s.messages); ok {
		after = m.Seq - 1
	}
	return &ResumeError{ConversationID: s.conv, After: after}
}

// takeBack empties ch without waiting and returns the first value it held, if any.
func takeBack[T any](ch chan T) (first T, ok bool) {
	for {
		select {
		case v := <-ch:
			if !ok {
				first, ok = v, true
			}
		default:
			return first, ok
		}
	}
}

func (s *subscriber) handle(ctx context.Context, ev chat.Event) error {
	if ev == resyncMarker {
		return s.catchUp(ctx, maxSeq)
	}
	if pm, ok := ev.(*pollMark); ok {
		if pm.EventSeq <= s.lastEvent {
			return nil
		}
		before := s.lastEvent
		err := s.catchUp(ctx, pm.EventSeq)
		s.hub.m.pollDeliveries.Add(float64(s.lastEvent - before))
		return err
	}
	seq := ev.Header().EventSeq
	if seq <= s.lastEvent {
		return nil // seen already
	}
	if seq > s.lastEvent+1 {
		// A gap: the events between were committed before ev was published.
		s.hub.m.gapFills.Inc()
		if err := s.catchUp(ctx, seq-1); err != nil {
			return err
		}
	}
	return s.process(ctx, ev)
}

// process hands ev on as the stream carries it, and ends the subscription with NOT_FOUND when ev
// removes the viewer from the conversation: from then on the viewer is a stranger to it. An
// events stream receives that event first.
func (s *subscriber) process(ctx context.Context, ev chat.Event) error {
	if s.events != nil {
		if err := s.sent(trySend(ctx, s, s.events, ev)); err != nil {
			return err
		}
	} else if added, ok := ev.(*chat.MessageAdded); ok && added.Message.Seq > s.lastSeq {
		if err := s.deliverMessage(ctx, added.Message); err != nil {
			return err
		}
	}
	s.lastEvent = ev.Header().EventSeq
	if removed, ok := ev.(*chat.MemberRemoved); ok && removed.User.ID == s.viewer {
		return apperr.ErrNotFound
	}
	return nil
}

// deliverMessage hands a message to a messages stream.
func (s *subscriber) deliverMessage(ctx context.Context, m *chat.Message) error {
	if err := s.sent(trySend(ctx, s, s.messages, m)); err != nil {
		return err
	}
	s.lastSeq = m.Seq
	return nil
}

// sent counts a delivery, or says why there was none: the subscriber was cut off, or stopped.
func (s *subscriber) sent(ok bool) error {
	if ok {
		s.hub.m.deliveries.Inc()
		return nil
	}
	select {
	case <-s.cut:
		return s.resumeError()
	default:
		return errStopped
	}
}

// trySend waits until out takes v, for as long as the buffer holds: false when the subscription
// was cut off or stopped first.
func trySend[T any](ctx context.Context, s *subscriber, out chan T, v T) bool {
	select {
	case out <- v:
		return true
	case <-s.cut:
	case <-ctx.Done():
	case <-s.hub.done:
	}
	return false
}

// catchUp handles, from PostgreSQL, the events after s.lastEvent up to event_seq upTo (maxSeq:
// all there are now).
func (s *subscriber) catchUp(ctx context.Context, upTo int64) error {
	return catchUp(ctx, s.hub, &s.lastEvent, upTo,
		func(ctx context.Context, after int64, limit int) ([]chat.Event, error) {
			return s.hub.readEvents(ctx, s.conv, after, limit)
		},
		func(ev chat.Event) int64 { return ev.Header().EventSeq },
		func(ev chat.Event) (bool, error) { return false, s.process(ctx, ev) },
		func(err error) error { return fmt.Errorf("live: conversation %d: %w", s.conv, err) })
}

// errSeqGap: a stream's events in the store are not consecutive.
var errSeqGap = errors.New("events missing in the store")

// catchUp reads from PostgreSQL (read) the events of one stream after *last up to event_seq
// upTo (maxSeq: all there are now) and handles each in order; handle moves *last, and may end
// the catch-up early (stop). Events are published after commit, so those up to an announced
// upTo are committed: a read that finds none is retried a few times before giving up. wrap
// names the stream in errors; a hole in the stored sequence is errSeqGap.
func catchUp[T any](ctx context.Context, h *Hub, last *int64, upTo int64,
	read func(ctx context.Context, after int64, limit int) ([]T, error), seqOf func(T) int64,
	handle func(T) (stop bool, err error), wrap func(error) error) error {
	const maxEmptyReads = 4
	empty := 0
	for *last < upTo {
		limit := h.cfg.PageSize
		if upTo != maxSeq && upTo-*last < int64(limit) {
			limit = int(upTo - *last)
		}
		evs, err := read(ctx, *last, limit)
		if err != nil {
			if ctx.Err() != nil {
				return errStopped
			}
			return wrap(fmt.Errorf("reading after event %d: %w", *last, err))
		}
		for _, ev := range evs { // may be shared with other readers of the same page: read only
			seq := seqOf(ev)
			if seq <= *last {
				continue
			}
			if seq != *last+1 {
				return wrap(fmt.Errorf("event %d follows %d: %w", seq, *last, errSeqGap))
			}
			stop, err := handle(ev)
			if err != nil || stop {
				return err
			}
		}
		if upTo == maxSeq {
			if len(evs) < limit {
				return nil // nothing more committed
			}
			continue
		}
		if len(evs) == 0 {
			empty++
			if empty == maxEmptyReads {
				return wrap(fmt.Errorf("events %d..%d announced but not found", *last+1, upTo))
			}
			if err := sleep(ctx, h.done, time.Duration(empty)*20*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// replayMessages hands a messages stream the messages after s.lastSeq up to seq upTo, from
// PostgreSQL (a subscription with afterSeq).
func (s *subscriber) replayMessages(ctx context.Context, upTo int64) error {
	for s.lastSeq < upTo {
		limit := int(min(int64(s.hub.cfg.PageSize), upTo-s.lastSeq))
		msgs, err := s.hub.readMessages(ctx, s.conv, s.lastSeq, limit)
		if err != nil {
			if ctx.Err() != nil {
				return errStopped
			}
			return fmt.Errorf("live: reading conversation %d after seq %d: %w", s.conv, s.lastSeq, err)
		}
		if len(msgs) == 0 {
			return fmt.Errorf("live: conversation %d: messages %d..%d not found", s.conv, s.lastSeq+1, upTo)
		}
		for i := range msgs {
			m := &msgs[i] // shared with other readers of the same page: read only
			if m.Seq != s.lastSeq+1 {
				return fmt.Errorf("live: conversation %d: seq %d follows %d in the history", s.conv, m.Seq, s.lastSeq)
			}
			if err := s.deliverMessage(ctx, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return errStopped
	case <-done:
		return errStopped
	}
}
