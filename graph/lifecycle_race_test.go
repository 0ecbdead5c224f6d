package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/internal/chat"
)

// TestEditDeleteNoStaleReadsAtDepth is the caches' race test for messages that change: in a
// conversation of 10,000 messages, the message at offset 0 and the one at offset 5,000 are edited
// and deleted, round after round (each round first sends a message, so both offsets name new
// messages), through both instances of a deployment, while readers race at those offsets through
// both caches on both instances, as two viewers, by offset pages and by history cursors. A read
// is stale when it started after a mutation's answer was received and still shows the message
// as it was before (a lower version, or not deleted), or misses an acknowledged send; a read is
// torn when its body, version and deletedAt do not belong together. There must be neither in
// 10,000 reads.
func TestEditDeleteNoStaleReadsAtDepth(t *testing.T) {
	t.Parallel()
	const total, deep = 10000, 5000
	d, alice, bob, conv, original := seededAliceAndBob(t, "Deep", total, "round ") // Alice owns it
	ids := messageIDs(t, d.direct, conv)
	began := time.Now()

	edited := func(seq int64, version int) string { return fmt.Sprintf("seq %d, version %d", seq, version) }
	sender := func(seq int64) int64 {
		if seq > total {
			return alice
		}
		return []int64{alice, bob}[(seq-1)%2]
	}

	// What the writer has acknowledged: each changed message's version, and the last seq.
	type ackedMsg struct {
		version int
		deleted bool
	}
	var mu sync.RWMutex
	acked := map[string]ackedMsg{}
	ackedLast := int64(total)
	snapshot := func() (map[string]ackedMsg, int64) {
		mu.RLock()
		defer mu.RUnlock()
		return maps.Clone(acked), ackedLast
	}

	// The reads: offset pages and history, at offset 0 and at depth, on both instances, as both
	// members (the response cache keeps a response per viewer).
	type readKind struct {
		name    string
		query   string
		v       vars
		offset  int64 // the page starts at last seq - offset; -1: a fixed seq range
		history bool
	}
	kinds := []readKind{
		{"messages at offset 0", pageOfQuery, vars{"id": conv, "limit": 5, "offset": 0}, 0, false},
		{"messages at offset 5000", pageOfQuery, vars{"id": conv, "limit": 5, "offset": deep}, deep, false},
		{"history", historyOfQuery, vars{"id": conv, "first": 5}, 0, true},
		// seq 5002..4998: the deep messages of rounds 0 to 2, and their neighbours.
		{"history before seq 5003", historyOfQuery, vars{"id": conv, "first": 5, "before": chat.EncodeMessageCursor(deep + 3)}, -1, true},
	}
	type combo struct {
		kind   readKind
		where  string
		client *apptest.Client
	}
	client := concurrentClients(t)
	var combos []combo
	for _, k := range kinds {
		for _, srv := range []struct {
			name string
			srv  *apptest.Server
		}{{"A", d.a}, {"B", d.b}} {
			for _, who := range []int64{alice, bob} {
				combos = append(combos, combo{k, fmt.Sprintf("%s on %s as %d", k.name, srv.name, who), client(srv.srv, who)})
			}
		}
	}

	// check reads one combo and returns what is wrong with it ("" when nothing), given what was
	// acknowledged when the read started.
	check := func(ctx context.Context, c combo, ack map[string]ackedMsg, last int64) (stale, torn string, err error) {
		res, err := c.client.Do(ctx, c.kind.query, c.kind.v)
		if err != nil {
			return "", "", err
		}
		if !res.OK() {
			return "", "", fmt.Errorf("%s: status %d, errors %+v", c.where, res.Status, res.Errors)
		}
		var items []msgView
		var out struct {
			Conversation *struct {
				Messages struct{ Items []msgView }
				History  struct{ Edges []struct{ Node msgView } }
			}
		}
		if err := json.Unmarshal(res.Data, &out); err != nil || out.Conversation == nil {
			return "", "", fmt.Errorf("%s: %s (%v)", c.where, res.Data, err)
		}
		items = out.Conversation.Messages.Items
		if c.kind.history {
			for _, e := range out.Conversation.History.Edges {
				items = append(items, e.Node)
			}
		}
		if len(items) != 5 {
			return "", "", fmt.Errorf("%s: %d items", c.where, len(items))
		}
		top := int64(deep + 2)
		if c.kind.offset >= 0 {
			top = items[0].Seq
			if top < last-c.kind.offset {
				stale = fmt.Sprintf("%s starts at seq %d, but seq %d was acknowledged", c.where, top, last)
			}
		}
		for i, m := range items {
			if m.Seq != top-int64(i) {
				return "", "", fmt.Errorf("%s: item %d has seq %d, want %d", c.where, i, m.Seq, top-int64(i))
			}
			switch {
			case m.DeletedAt != nil:
				if m.Body != "" || len(m.Reactions) != 0 || m.Version < 2 {
					torn = fmt.Sprintf("%s: deleted seq %d: %+v", c.where, m.Seq, m)
				}
			case m.Version == 1:
				if m.Body != original(m.Seq) || m.EditedAt != nil {
					torn = fmt.Sprintf("%s: seq %d at version 1: %+v", c.where, m.Seq, m)
				}
			default:
				if m.Body != edited(m.Seq, m.Version) || m.EditedAt == nil {
					torn = fmt.Sprintf("%s: seq %d at version %d: %+v", c.where, m.Seq, m.Version, m)
				}
			}
			if a, ok := ack[m.ID]; ok && (m.Version < a.version || (a.deleted && m.DeletedAt == nil)) {
				stale = fmt.Sprintf("%s: seq %d shows version %d (deleted %v), but version %d (deleted %v) was acknowledged before the read",
					c.where, m.Seq, m.Version, m.DeletedAt != nil, a.version, a.deleted)
			}
		}
		return stale, torn, nil
	}

	const minReads = 10000
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var reads, staleReads, tornReads, mutations, rounds atomic.Int64
	var firstStale, firstTorn atomic.Value
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	servers := []*apptest.Server{d.a, d.b}
	var wg sync.WaitGroup

	wg.Go(func() { // the writer
		ack := func(id string, m ackedMsg) {
			mu.Lock()
			acked[id] = m
			mu.Unlock()
			mutations.Add(1)
		}
		for r := int64(0); !stopped(); r++ {
			if r > 0 { // a new message at offset 0; the one at offset 5000 is one further up
				var sent struct{ SendMessage msgView }
				if err := mutate(client(servers[r%2], alice), sendMut, vars{"c": conv, "b": original(total + r)}, &sent); err != nil {
					t.Errorf("round %d: %v", r, err)
					return
				}
				if sent.SendMessage.Seq != total+r {
					t.Errorf("round %d: sent seq %d", r, sent.SendMessage.Seq)
					return
				}
				mu.Lock()
				ids[total+r], ackedLast = sent.SendMessage.ID, total+r
				mu.Unlock()
				mutations.Add(1)
			}
			targets := []int64{total + r, deep + r}
			version := map[int64]int{total + r: 1, deep + r: 1}
			mu.RLock()
			targetIDs := []string{ids[targets[0]], ids[targets[1]]}
			mu.RUnlock()
			for e := range 3 {
				for i, seq := range targets {
					var out struct{ EditMessage msgView }
					next := version[seq] + 1
					if err := mutate(client(servers[(int(r)+e+i)%2], sender(seq)), editMut, vars{"id": targetIDs[i], "b": edited(seq, next)}, &out); err != nil {
						t.Errorf("round %d: %v", r, err)
						return
					}
					if out.EditMessage.Version != next {
						t.Errorf("round %d: an edit of seq %d answered version %d, want %d", r, seq, out.EditMessage.Version, next)
						return
					}
					version[seq] = next
					ack(targetIDs[i], ackedMsg{version: next})
				}
			}
			for i, seq := range targets { // the owner deletes both, whoever sent them
				var out struct{ DeleteMessage msgView }
				if err := mutate(client(servers[(int(r)+i+1)%2], alice), deleteMut, vars{"id": targetIDs[i]}, &out); err != nil {
					t.Errorf("round %d: %v", r, err)
					return
				}
				if out.DeleteMessage.Version != version[seq]+1 || out.DeleteMessage.DeletedAt == nil {
					t.Errorf("round %d: the delete of seq %d answered %+v", r, seq, out.DeleteMessage)
					return
				}
				ack(targetIDs[i], ackedMsg{version: version[seq] + 1, deleted: true})
			}
			rounds.Add(1)
		}
	})

	perKind := make([]atomic.Int64, len(kinds))
	for k := range 4 { // the readers
		wg.Go(func() {
			for i := k; !stopped(); i++ {
				n := (i*5 + k) % len(combos)
				c := combos[n]
				ack, last := snapshot() // before the read starts
				stale, torn, err := check(ctx, c, ack, last)
				if err != nil {
					t.Errorf("read: %v", err)
					stopOnce.Do(func() { close(stop) })
					return
				}
				if stale != "" {
					staleReads.Add(1)
					firstStale.CompareAndSwap(nil, stale)
				}
				if torn != "" {
					tornReads.Add(1)
					firstTorn.CompareAndSwap(nil, torn)
				}
				perKind[n/4].Add(1)
				if reads.Add(1) >= minReads || ctx.Err() != nil {
					stopOnce.Do(func() { close(stop) })
				}
			}
		})
	}
	wg.Wait()
	raced := time.Since(began)

	// Once everything is acknowledged, every combination shows it.
	ack, last := snapshot()
	for _, c := range combos {
		stale, torn, err := check(context.Background(), c, ack, last)
		if err != nil || stale != "" || torn != "" {
			t.Errorf("after the race: %v %s %s", err, stale, torn)
		}
	}

	stats := func(srv *apptest.Server) string {
		_, body := srv.GetOps("/health/cache")
		return body
	}
	t.Logf("%d reads (per kind %d %d %d %d) against %d mutations in %d rounds in %v",
		reads.Load(), perKind[0].Load(), perKind[1].Load(), perKind[2].Load(), perKind[3].Load(),
		mutations.Load(), rounds.Load(), raced.Round(time.Millisecond))
	t.Logf("A /health/cache %s", stats(d.a))
	t.Logf("B /health/cache %s", stats(d.b))
	if n := staleReads.Load(); n > 0 {
		t.Errorf("%d stale reads of %d; first: %v", n, reads.Load(), firstStale.Load())
	}
	if n := tornReads.Load(); n > 0 {
		t.Errorf("%d torn reads of %d; first: %v", n, reads.Load(), firstTorn.Load())
	}
	if reads.Load() < minReads {
		t.Fatalf("only %d reads before the deadline", reads.Load())
	}
	if rounds.Load() < 3 {
		t.Fatalf("only %d rounds of edits and deletes during the reads", rounds.Load())
	}
	for name, srv := range map[string]*apptest.Server{"A": d.a, "B": d.b} {
		var h struct {
			Hits          int64
			ResponseCache struct{ Hits, StaleRejected int64 }
		}
		if err := json.Unmarshal([]byte(stats(srv)), &h); err != nil {
			t.Fatal(err)
		}
		if h.Hits == 0 || h.ResponseCache.Hits == 0 || h.ResponseCache.StaleRejected == 0 {
			t.Errorf("instance %s: the race exercised too little of the caches: %+v", name, h)
		}
	}
}
