package graph_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTimelineWalksBothWaysWhileSending is the permalink's walk: in a conversation of 10,000
// messages, a reader opens historyAround(seq: 5000) on one instance and pages from its cursors
// with timeline, older (first/after) and newer (last/before) in turn, to both ends, while a
// writer sends messages through the other instance (200, and on until the reader has caught up
// with it five times). The reader must see every seq from 1 to the last one sent exactly once,
// each page continuing where the previous one ended, the messages sent during the walk
// included: at the newest end it polls, as a client does, until the writer is done and a page
// says nothing newer remains. Both caches are on, so the polls
// of one cursor at the newest end also check that no stored response outlives a send made
// through the other instance.
func TestTimelineWalksBothWaysWhileSending(t *testing.T) {
	t.Parallel()
	const total, middle, side, pageSize, sends = 10000, 5000, 25, 100, 200
	d, alice, bob, conv, body := seededAliceAndBob(t, "Walk", total, "sent ")

	client := concurrentClients(t)
	reader := client(d.a, alice)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which ends the writer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The writer starts once the reader holds its window, and sends through instance B.
	readerStarted, writerDone := make(chan struct{}), make(chan struct{})
	var sentDuringWalk, caughtUp atomic.Int64
	wg.Go(func() {
		defer close(writerDone)
		select {
		case <-readerStarted:
		case <-ctx.Done():
			return
		}
		w := client(d.b, bob)
		// At least sends messages, and on until the reader has caught up with it a few times.
		for i := int64(1); ctx.Err() == nil && (i <= sends || caughtUp.Load() < 5); i++ {
			var out struct{ SendMessage struct{ Seq int64 } }
			if err := mutate(w, sendMut, vars{"c": conv, "b": body(total + i)}, &out); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
			if out.SendMessage.Seq != total+i {
				t.Errorf("send %d got seq %d", i, out.SendMessage.Seq)
				return
			}
			sentDuringWalk.Add(1)
		}
	})
	closed := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}

	seen := make(map[int64]int, total+sends)
	take := func(where string, items []timelineNode, from int64) {
		t.Helper()
		for i, m := range items {
			if want := from - int64(i); m.Seq != want {
				t.Fatalf("%s: item %d has seq %d, want %d (newest first, no gap)", where, i, m.Seq, want)
			}
			if m.Body != body(m.Seq) {
				t.Fatalf("%s: seq %d has body %q", where, m.Seq, m.Body)
			}
			seen[m.Seq]++
		}
	}

	var w aroundView
	reader.Query(t, aroundQuery, vars{"id": conv, "seq": middle, "before": side, "after": side}, &w)
	win := w.Conversation.HistoryAround
	if len(win.Items) != 2*side+1 || !win.HasOlder || !win.HasNewer {
		t.Fatalf("the window: %d items, hasOlder %v, hasNewer %v", len(win.Items), win.HasOlder, win.HasNewer)
	}
	take("the window", win.Items, middle+side)
	close(readerStarted)
	walkStart := time.Now()

	older, newer := *win.OlderCursor, *win.NewerCursor
	oldest, newest := int64(middle-side), int64(middle+side) // the ends seen so far
	olderDone, newerDone := false, false
	var olderPages, newerPages int
	readPage := func(args vars) (timelineView, page, []timelineNode) {
		var p timelineView
		reader.Query(t, timelineQuery, args, &p)
		return p, checkConnection(t, p), nodes(p)
	}
	for !olderDone || !newerDone {
		if ctx.Err() != nil {
			t.Fatalf("the walk did not end: oldest %d, newest %d seen", oldest, newest)
		}
		if !olderDone {
			p, tl, items := readPage(vars{"id": conv, "first": pageSize, "after": older})
			if !tl.HasPrev {
				t.Fatalf("a page after seq %d says nothing precedes it", oldest)
			}
			take(fmt.Sprintf("the page after seq %d", oldest), items, oldest-1)
			if n := len(items); n > 0 {
				older, oldest = *p.Conversation.Timeline.PageInfo.EndCursor, items[n-1].Seq
			}
			olderDone = !tl.HasNext
			olderPages++
		}
		if !newerDone {
			writerFinished := closed(writerDone) // before the request: all it sent is committed
			p, tl, items := readPage(vars{"id": conv, "last": pageSize, "before": newer})
			if !tl.HasNext {
				t.Fatalf("a page before seq %d says nothing follows it", newest)
			}
			if n := len(items); n > 0 {
				take(fmt.Sprintf("the page before seq %d", newest), items, newest+int64(n))
				newer, newest = *p.Conversation.Timeline.PageInfo.StartCursor, items[0].Seq
			}
			newerPages++
			switch {
			case tl.HasPrev:
			case writerFinished:
				newerDone = true
			default: // caught up with the writer: poll
				caughtUp.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	walked := time.Since(walkStart)
	wg.Wait()

	last := int64(total) + sentDuringWalk.Load()
	for seq := int64(1); seq <= last; seq++ {
		if seen[seq] != 1 {
			t.Errorf("seq %d seen %d times", seq, seen[seq])
		}
	}
	if int64(len(seen)) != last {
		t.Errorf("%d seqs seen, want 1..%d", len(seen), last)
	}
	if sentDuringWalk.Load() < sends {
		t.Errorf("%d messages sent during the walk, want at least %d", sentDuringWalk.Load(), sends)
	}
	t.Logf("walked %d older and %d newer pages (%d polls at the newest end) in %v while %d messages were sent",
		olderPages, newerPages, caughtUp.Load(), walked.Round(time.Millisecond), sentDuringWalk.Load())
}

// nodes returns a timeline page's messages in edge order.
func nodes(v timelineView) []timelineNode {
	out := make([]timelineNode, len(v.Conversation.Timeline.Edges))
	for i, e := range v.Conversation.Timeline.Edges {
		out[i] = e.Node
	}
	return out
}
