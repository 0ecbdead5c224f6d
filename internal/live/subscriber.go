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

	// run's goroutine only:
	lastEvent int64 // event_seq of the last event handled
	lastSeq   int64 // messages stream: seq of the last message handed over
}

// errStopped ends a subscription quietly: its context ended or the hub closed.
var errStopped = errors.New("live: subscription stopped")

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
	s.hub.detach(s)
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

func (s *subscriber) resumeError() error {
	if s.events != nil {
		return &ResumeError{ConversationID: s.conv, Events: true, After: s.lastEvent}
	}
	return &ResumeError{ConversationID: s.conv, After: s.lastSeq}
}

func (s *subscriber) handle(ctx context.Context, ev chat.Event) error {
	if ev == resyncMarker {
		return s.catchUp(ctx, maxSeq)
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
	const maxEmptyReads = 4
	empty := 0
	for s.lastEvent < upTo {
		limit := s.hub.cfg.PageSize
		if upTo != maxSeq && upTo-s.lastEvent < int64(limit) {
			limit = int(upTo - s.lastEvent)
		}
		evs, err := s.hub.readEvents(ctx, s.conv, s.lastEvent, limit)
		if err != nil {
			if ctx.Err() != nil {
				return errStopped
			}
			return fmt.Errorf("live: reading conversation %d after event %d: %w", s.conv, s.lastEvent, err)
		}
		for _, ev := range evs { // shared with other readers of the same page: read only
			seq := ev.Header().EventSeq
			if seq <= s.lastEvent {
				continue
			}
			if seq != s.lastEvent+1 {
				return fmt.Errorf("live: conversation %d: event %d follows %d in the store", s.conv, seq, s.lastEvent)
			}
			if err := s.process(ctx, ev); err != nil {
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
			// Events are published after commit, so the missing ones are committed; a read
			// that finds none is retried a few times before the subscription gives up.
			empty++
			if empty == maxEmptyReads {
				return fmt.Errorf("live: conversation %d: events %d..%d announced but not found", s.conv, s.lastEvent+1, upTo)
			}
			if err := sleep(ctx, s.hub.done, time.Duration(empty)*20*time.Millisecond); err != nil {
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
