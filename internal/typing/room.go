package typing

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

// ErrClosed is returned by Subscribe once Close has begun.
var ErrClosed = errors.New("typing: closed")

// ErrTooSlow ends a subscription whose buffer overflowed. Resubscribing starts with the
// members typing at that moment, so nothing is lost but the history of who typed.
var ErrTooSlow = apperr.New(apperr.RateLimited, "subscriber too slow: resubscribe")

// expirySlack is added to a room's timer, so that the typist whose end time it waits for has
// expired by Redis's clock when the room reads again.
const expirySlack = 10 * time.Millisecond

// Subscribe starts viewerID's subscription to conv's typing events: first typing:true for each
// member typing now, then every change. A conversation that is missing and one the viewer is not
// a member of are both apperr.ErrNotFound; while Redis cannot answer it is ErrUnavailable. The
// channel is closed when ctx ends, when Close runs, when the viewer stops being a member, or
// when the subscriber falls too far behind; just before, onEnd (if not nil) is called once with
// the reason: nil for the first two, apperr.ErrNotFound, or ErrTooSlow.
func (s *Service) Subscribe(ctx context.Context, viewerID, conv int64, onEnd func(error)) (<-chan *chat.TypingEvent, error) {
	if _, err := s.member(ctx, viewerID, conv); err != nil {
		return nil, err
	}
	r, err := s.attach(ctx, conv)
	if err != nil {
		return nil, err
	}
	sub := &subscriber{viewer: viewerID, onEnd: onEnd}
	r.mu.Lock()
	if r.closed { // Close ran while the room started
		r.mu.Unlock()
		s.release(r)
		return nil, ErrClosed
	}
	typists := r.sortedTypists()
	sub.ch = make(chan *chat.TypingEvent, s.cfg.Buffer+len(typists))
	for _, id := range typists {
		sub.ch <- &chat.TypingEvent{User: chat.User{ID: id, Name: r.typing[id].name}, Typing: true}
	}
	r.subs[sub] = struct{}{}
	s.m.active.Inc() // before anything can end it
	r.mu.Unlock()
	s.m.events.Add(float64(len(typists)))
	context.AfterFunc(ctx, func() { r.detach(sub) })
	return sub.ch, nil
}

// A subscriber is one typing subscription.
type subscriber struct {
	viewer  int64
	ch      chan *chat.TypingEvent // sent to and closed under the room's lock
	onEnd   func(error)
	ended   bool      // room.mu
	release sync.Once // the subscriber's reference to its room
}

// A room is one conversation's local subscribers, its Redis subscription, and the typists it
// last delivered.
type room struct {
	svc     *Service
	conv    int64
	channel string
	token   string // payload of the PING that confirms the SUBSCRIBE
	shard   *shard // set once, under svc.mu
	refs    int    // subscribers attached or attaching; svc.mu

	ready      chan struct{} // closed after the first read of the typists
	readyOnce  sync.Once
	state      atomic.Int32
	readyTimer *time.Timer

	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	typing  map[int64]typist // as last delivered
	expiry  *time.Timer      // reads again when the earliest typist's time runs out
	reading bool             // a read runs
	again   bool             // one more read after it
	closed  bool
}

type typist struct {
	name  string
	until time.Time // by this instance's clock
}

// Redis subscription states of a room.
const (
	statePending  int32 = iota // SUBSCRIBE sent, not yet confirmed
	stateReady                 // confirmed: every message published from then on arrives
	stateDegraded              // not confirmed in time: running, and reading again once it is
)

// attach adds a reference to conv's room, creating it (and its Redis subscription) if needed,
// and waits until it has read the typists once.
func (s *Service) attach(ctx context.Context, conv int64) (*room, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	r := s.rooms[conv]
	if r == nil {
		s.nextID++
		r = &room{
			svc: s, conv: conv, channel: Channel(conv), token: "typing:" + formatID(s.nextID),
			ready: make(chan struct{}), subs: map[*subscriber]struct{}{}, typing: map[int64]typist{},
		}
		r.readyTimer = time.AfterFunc(s.cfg.ReadyTimeout, r.degrade)
		s.rooms[conv] = r
		r.shard = s.pubsub.Add(s.shards, r)
	}
	r.refs++
	s.mu.Unlock()
	select {
	case <-r.ready:
		return r, nil
	case <-ctx.Done():
		s.release(r)
		return nil, ctx.Err()
	}
}

// release drops one reference to r, and r itself (with its Redis subscription) with the last.
func (s *Service) release(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.refs--
	if r.refs > 0 {
		return
	}
	if s.rooms[r.conv] == r {
		delete(s.rooms, r.conv)
	}
	r.close()
	if sh := r.shard; sh != nil && !s.closed {
		sh.Remove(s.shards, r)
	}
}

func (r *room) close() {
	r.readyTimer.Stop()
	r.markReady()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.expiry != nil {
		r.expiry.Stop()
	}
}

func (r *room) markReady() { r.readyOnce.Do(func() { close(r.ready) }) }

// confirmed: the PONG that follows the room's SUBSCRIBE arrived.
func (r *room) confirmed() {
	if r.state.CompareAndSwap(statePending, stateReady) {
		r.readyTimer.Stop()
		r.kick()
		return
	}
	if r.state.CompareAndSwap(stateDegraded, stateReady) {
		r.kick()
	}
}

// degrade: Redis did not confirm the subscription in time. The room starts anyway (with what it
// can read) and reads again once Redis confirms it.
func (r *room) degrade() {
	if r.state.CompareAndSwap(statePending, stateDegraded) {
		r.svc.log.Warn("typing: redis subscription not confirmed; continuing, the room reads again when it is",
			"conversation_id", r.conv)
		r.kick()
	}
}

// resubscribed: Redis confirmed a (re)subscription of the channel: messages published while the
// connection was down are lost, so read again.
func (r *room) resubscribed() {
	switch r.state.Load() {
	case stateReady:
		r.kick()
	case stateDegraded:
		if r.state.CompareAndSwap(stateDegraded, stateReady) {
			r.kick()
		}
	}
}

// kick asks the room to read the typists again: now, or after the read that runs.
func (r *room) kick() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if r.reading {
		r.again = true
		r.mu.Unlock()
		return
	}
	r.reading = true
	r.mu.Unlock()
	go func() {
		for {
			r.read()
			r.mu.Lock()
			if !r.again || r.closed {
				r.reading = false
				r.mu.Unlock()
				return
			}
			r.again = false
			r.mu.Unlock()
		}
	}()
}

// read reads the typists and the subscribers' membership, and delivers what changed.
func (r *room) read() {
	defer r.markReady()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	viewers := map[int64]struct{}{}
	for sub := range r.subs {
		viewers[sub.viewer] = struct{}{}
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.svc.cfg.QueryTimeout)
	states, err := r.svc.states(ctx, []int64{r.conv}, [][]int64{slices.Sorted(maps.Keys(viewers))})
	cancel()
	now := time.Now()

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if err != nil {
		r.svc.log.Warn("typing: reading the typists failed; they stop at the end time last read", "conversation_id", r.conv, "err", err)
		for _, id := range r.sortedTypists() {
			if tp := r.typing[id]; !now.Before(tp.until) {
				delete(r.typing, id)
				r.deliver(&chat.TypingEvent{User: chat.User{ID: id, Name: tp.name}})
			}
		}
		r.schedule(now)
		return
	}
	st := states[0]
	for sub := range r.subs {
		if st.absent[sub.viewer] {
			r.end(sub, apperr.ErrNotFound)
		}
	}
	next := make(map[int64]typist, len(st.typing))
	for _, t := range st.typing {
		next[t.User.ID] = typist{name: t.User.Name, until: now.Add(t.Left)}
	}
	for _, id := range r.sortedTypists() {
		if _, still := next[id]; !still {
			r.deliver(&chat.TypingEvent{User: chat.User{ID: id, Name: r.typing[id].name}})
		}
	}
	for _, t := range st.typing {
		if _, was := r.typing[t.User.ID]; !was {
			r.deliver(&chat.TypingEvent{User: t.User, Typing: true})
		}
	}
	r.typing = next
	r.schedule(now)
}

// schedule sets the room's timer to the earliest end time of its typists. Called with r.mu.
func (r *room) schedule(now time.Time) {
	var first time.Time
	for _, tp := range r.typing {
		if first.IsZero() || tp.until.Before(first) {
			first = tp.until
		}
	}
	if first.IsZero() {
		if r.expiry != nil {
			r.expiry.Stop()
		}
		return
	}
	d := first.Sub(now) + expirySlack
	if r.expiry == nil {
		r.expiry = time.AfterFunc(d, r.kick)
	} else {
		r.expiry.Reset(d)
	}
}

func (r *room) sortedTypists() []int64 { return slices.Sorted(maps.Keys(r.typing)) }

// deliver hands ev to every subscriber without waiting: one whose buffer is full is cut off.
// Called with r.mu.
func (r *room) deliver(ev *chat.TypingEvent) {
	for sub := range r.subs {
		select {
		case sub.ch <- ev:
			r.svc.m.events.Inc()
		default:
			r.svc.m.cutoffs.Inc()
			r.end(sub, ErrTooSlow)
		}
	}
}

// end removes sub from the room and closes its channel, telling onEnd why. Called with r.mu;
// its reference to the room is dropped apart, without the lock.
func (r *room) end(sub *subscriber, err error) {
	if sub.ended {
		return
	}
	sub.ended = true
	delete(r.subs, sub)
	if sub.onEnd != nil {
		sub.onEnd(err)
	}
	close(sub.ch)
	go r.drop(sub)
}

// detach ends sub (its context is done) and drops its reference.
func (r *room) detach(sub *subscriber) {
	r.mu.Lock()
	r.end(sub, nil)
	r.mu.Unlock()
}

// drop gives sub's reference to the room back, once.
func (r *room) drop(sub *subscriber) {
	sub.release.Do(func() {
		r.svc.m.active.Dec()
		r.svc.release(r)
	})
}

// Close ends every subscription (their channels close, onEnd is told nil) and drops the Redis
// subscriptions. Set and Typing keep working.
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	rooms := slices.Collect(maps.Values(s.rooms))
	shards := slices.Collect(maps.Values(s.shards))
	s.shards = map[int]*shard{}
	s.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		for sub := range r.subs {
			r.end(sub, nil)
		}
		r.mu.Unlock()
		r.close()
	}
	for _, sh := range shards {
		sh.Close()
	}
	s.shardsWG.Wait()
}
