package live

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/threadline/threadline/internal/chat"
)

// A subscriber is one subscription: the events its topic passes on wait in `in` (bounded), and
// its goroutine (run) puts them in order, fills gaps from PostgreSQL, and hands each message to
// the consumer on `out`.
type subscriber struct {
	hub   *Hub
	topic *topic
	conv  int64

	in      chan *chat.Message
	cut     chan struct{} // closed when in overflowed
	cutOnce sync.Once
	out     chan *chat.Message

	last int64 // seq of the last message handed to the consumer; run's goroutine only
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

func (s *subscriber) run(ctx context.Context, start int64, replay bool, onEnd func(error)) {
	err := s.loop(ctx, start, replay)
	s.hub.detach(s)
	s.hub.m.active.Dec()
	if err != nil && !errors.Is(err, errStopped) {
		var resume *ResumeError
		if errors.As(err, &resume) {
			s.hub.log.InfoContext(ctx, "live: slow subscriber cut off", "conversation_id", s.conv, "after_seq", resume.AfterSeq)
		} else {
			s.hub.log.ErrorContext(ctx, "live: subscription failed", "conversation_id", s.conv, "after_seq", s.last, "err", err)
		}
	} else {
		err = nil
	}
	if onEnd != nil {
		onEnd(err) // before close: the consumer reads the reason once out is closed
	}
	close(s.out)
}

func (s *subscriber) loop(ctx context.Context, start int64, replay bool) error {
	s.last = start
	if replay {
		if err := s.catchUp(ctx, maxSeq); err != nil {
			return err
		}
	}
	for {
		select { // a cut-off wins over events still buffered
		case <-s.cut:
			return s.resumeError()
		default:
		}
		select {
		case m := <-s.in:
			if err := s.handle(ctx, m); err != nil {
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
	return &ResumeError{ConversationID: s.conv, AfterSeq: s.last}
}

func (s *subscriber) handle(ctx context.Context, m *chat.Message) error {
	if m == resyncMarker {
		return s.catchUp(ctx, maxSeq)
	}
	if m.Seq <= s.last {
		return nil // seen already
	}
	if m.Seq > s.last+1 {
		// A gap: the messages between were committed before m was published.
		s.hub.m.gapFills.Inc()
		if err := s.catchUp(ctx, m.Seq-1); err != nil {
			return err
		}
	}
	return s.deliver(ctx, m)
}

// catchUp delivers, from PostgreSQL, the messages after s.last up to seq upTo (maxSeq: all there
// are now).
func (s *subscriber) catchUp(ctx context.Context, upTo int64) error {
	const maxEmptyReads = 4
	empty := 0
	for s.last < upTo {
		limit := s.hub.cfg.PageSize
		if upTo != maxSeq && upTo-s.last < int64(limit) {
			limit = int(upTo - s.last)
		}
		msgs, err := s.hub.read(ctx, s.conv, s.last, limit)
		if err != nil {
			if ctx.Err() != nil {
				return errStopped
			}
			return fmt.Errorf("live: reading conversation %d after seq %d: %w", s.conv, s.last, err)
		}
		for i := range msgs {
			m := &msgs[i] // shared with other readers of the same page: read only
			if m.Seq <= s.last {
				continue
			}
			if m.Seq != s.last+1 {
				return fmt.Errorf("live: conversation %d: seq %d follows %d in the history", s.conv, m.Seq, s.last)
			}
			if err := s.deliver(ctx, m); err != nil {
				return err
			}
		}
		if upTo == maxSeq {
			if len(msgs) < limit {
				return nil // nothing more committed
			}
			continue
		}
		if len(msgs) == 0 {
			// Events are published after commit, so the missing messages are committed; a read
			// that finds none is retried a few times before the subscription gives up.
			empty++
			if empty == maxEmptyReads {
				return fmt.Errorf("live: conversation %d: seq %d..%d announced but not found", s.conv, s.last+1, upTo)
			}
			if err := sleep(ctx, s.hub.done, time.Duration(empty)*20*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliver hands m to the consumer, waiting for it as long as the buffer holds.
func (s *subscriber) deliver(ctx context.Context, m *chat.Message) error {
	select {
	case s.out <- m:
		s.last = m.Seq
		s.hub.m.deliveries.Inc()
		return nil
	case <-s.cut:
		return s.resumeError()
	case <-ctx.Done():
		return errStopped
	case <-s.hub.done:
		return errStopped
	}
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
