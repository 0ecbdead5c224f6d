package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/db/dbtest"
)

const cachedPageQuery = `query Page($id: ID!) { conversation(id: $id) { title messages(limit: 10) { items { seq body sender { name } } hasMore } lastMessage { seq } } }`

// hitsAfter runs fn and returns how many response-cache hits it produced.
func (e *env) hitsAfter(fn func()) int64 {
	before := e.responseCacheStats().Hits
	fn()
	return e.responseCacheStats().Hits - before
}

// cachedRead runs q twice as user and checks that the second run is a response-cache hit with the
// same bytes; it returns the data. The response is stored in the background, so the second read
// retries briefly until the store has landed.
func (e *env) cachedRead(user int64, q string, vars map[string]any) string {
	e.t.Helper()
	first := e.do("Bearer "+e.token(user), q, vars)
	if len(first.Errors) > 0 {
		e.t.Fatalf("errors: %+v", first.Errors)
	}
	for range 50 {
		var second gqlResponse
		if e.hitsAfter(func() { second = e.do("Bearer "+e.token(user), q, vars) }) == 1 {
			if string(second.Data) != string(first.Data) {
				e.t.Fatalf("a hit returned other data:\n%s\n%s", second.Data, first.Data)
			}
			return string(first.Data)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("the response was never served from the cache: %+v", e.responseCacheStats())
	return ""
}

func TestResponseCacheMutationsInvalidateWhatTheyChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true})
	alice, bob, carol := aliceBobCarol(t, e.direct)
	c1 := dbtest.Conversation(t, e.direct, "one", alice, bob)
	c2 := dbtest.Conversation(t, e.direct, "two", alice, bob)
	dbtest.Messages(t, e.direct, c1, []int64{alice, bob}, 12)
	dbtest.Messages(t, e.direct, c2, []int64{alice, bob}, 12)

	t.Run("sendMessage", func(t *testing.T) {
		e.cachedRead(alice, cachedPageQuery, map[string]any{"id": c1})
		e.cachedRead(alice, cachedPageQuery, map[string]any{"id": c2})
		e.as(bob, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "fresh"}) { seq } }`, map[string]any{"c": c1}, nil)
		var got gqlResponse
		if n := e.hitsAfter(func() { got = e.do("Bearer "+e.token(alice), cachedPageQuery, map[string]any{"id": c1}) }); n != 0 {
			t.Fatal("the page of the conversation written to was served from the cache")
		}
		var d struct {
			Conversation struct {
				Messages    struct{ Items []struct{ Seq int } }
				LastMessage struct{ Seq int }
			}
		}
		_ = json.Unmarshal(got.Data, &d)
		if d.Conversation.Messages.Items[0].Seq != 13 || d.Conversation.LastMessage.Seq != 13 {
			t.Fatalf("after the send: %s", got.Data)
		}
		if n := e.hitsAfter(func() { e.do("Bearer "+e.token(alice), cachedPageQuery, map[string]any{"id": c2}) }); n != 1 {
			t.Fatal("the page of another conversation was not served from the cache")
		}
	})

	t.Run("createConversation", func(t *testing.T) {
		// Carol asks for a conversation id that does not exist yet, and for one she cannot see.
		next := c2 + 1
		q := `query($id: ID!) { conversation(id: $id) { id title } }`
		if got := e.cachedRead(carol, q, map[string]any{"id": next}); got != `{"conversation":null}` {
			t.Fatalf("before: %s", got)
		}
		e.cachedRead(bob, q, map[string]any{"id": c1})
		var created struct{ CreateConversation struct{ ID string } }
		e.as(alice, `mutation($m: [ID!]) { createConversation(input: {title: "new", memberIds: $m}) { id } }`,
			map[string]any{"m": []string{fmt.Sprint(carol)}}, &created)
		if created.CreateConversation.ID != fmt.Sprint(next) {
			t.Fatalf("created %s, want %d", created.CreateConversation.ID, next)
		}
		var got gqlResponse
		if n := e.hitsAfter(func() { got = e.do("Bearer "+e.token(carol), q, map[string]any{"id": next}) }); n != 0 || string(got.Data) == `{"conversation":null}` {
			t.Fatalf("Carol, now a member, got the stored null: %s", got.Data)
		}
		// Bob is not in the new conversation: his stored response still stands.
		if n := e.hitsAfter(func() { e.do("Bearer "+e.token(bob), q, map[string]any{"id": c1}) }); n != 1 {
			t.Fatal("Bob's response, unrelated to the new conversation, was not served from the cache")
		}
	})
}

func TestResponseCacheViewerIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true})
	f := newFixture(t, e, 20)
	q := `query($id: ID!) { me { name } conversation(id: $id) { messages(limit: 3) { items { seq } } } }`
	vars := map[string]any{"id": f.conv}
	aliceData := e.cachedRead(f.alice, q, vars)

	var bobResp, carolResp gqlResponse
	if n := e.hitsAfter(func() { bobResp = e.do("Bearer "+e.token(f.bob), q, vars) }); n != 0 {
		t.Fatal("Bob was served a response stored for Alice")
	}
	if string(bobResp.Data) == aliceData {
		t.Fatalf("Bob got Alice's data: %s", bobResp.Data)
	}
	if n := e.hitsAfter(func() { carolResp = e.do("Bearer "+e.token(f.carol), q, vars) }); n != 0 {
		t.Fatal("Carol, a non-member, was served a stored response")
	}
	if string(carolResp.Data) != `{"me":{"name":"Carol"},"conversation":null}` {
		t.Fatalf("Carol: %s", carolResp.Data)
	}
	// Anonymous requests are never stored or served.
	anon := e.do("", q, vars)
	if len(anon.Errors) == 0 {
		t.Fatal("an anonymous request got data")
	}
	e.cachedRead(f.carol, q, vars) // Carol's own null is cacheable, for her only
}

func TestResponseCacheSkipsWhatItCannotTrack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true})
	f := newFixture(t, e, 5)
	for _, q := range []string{
		`query($id: ID!) { conversation(id: $id) { readStates { user { id } lastReadSeq } } }`, // every member's reading
		`query($id: ID!) { conversation(id: $id) { messages(limit: 0) { items { seq } } } }`,   // an error
	} {
		for range 3 {
			if n := e.hitsAfter(func() { e.do("Bearer "+e.token(f.alice), q, map[string]any{"id": f.conv}) }); n != 0 {
				t.Fatalf("served from the cache: %s", q)
			}
		}
	}
	if s := e.responseCacheStats(); s.Uncacheable < 6 {
		t.Fatalf("stats %+v", s)
	}
}

// TestResponseCacheNoStaleReads is the history cache's race test through the whole server with
// the response cache on: a read that starts after a sendMessage returned contains that message.
func TestResponseCacheNoStaleReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true, maxConns: 16})
	f := newFixture(t, e, 5)
	q := `query($id: ID!) { conversation(id: $id) { messages(limit: 5) { items { seq } } } }`
	vars := map[string]any{"id": f.conv}
	authz := "Bearer " + e.token(f.alice)

	sent := 0
	reads := raceReadYourWrites(t, 3, 5, func(i int) (int64, error) {
		var d struct{ SendMessage struct{ Seq int64 } }
		resp, err := e.doErr("Bearer "+e.token(f.bob), `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`,
			map[string]any{"c": f.conv, "b": fmt.Sprint("w", i)})
		if err == nil && len(resp.Errors) > 0 {
			err = fmt.Errorf("%+v", resp.Errors)
		}
		if err == nil {
			err = json.Unmarshal(resp.Data, &d)
		}
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		sent = i + 1
		return d.SendMessage.Seq, err
	}, func(_, _ int) (int64, error) {
		resp, err := e.doErr(authz, q, vars)
		if err == nil && len(resp.Errors) > 0 {
			err = fmt.Errorf("%+v %s", resp.Errors, resp.Data)
		}
		if err != nil {
			return 0, err
		}
		return newestSeq(resp.Data)
	})
	s := e.responseCacheStats()
	t.Logf("%d reads, %d sends; response cache %+v", reads, sent, s)
	if s.Hits == 0 || s.StaleRejected == 0 {
		t.Fatalf("the race exercised too little: %+v", s)
	}
}

// raceReadYourWrites races one writer against readers readers until minReads reads have
// been made, or for 3 minutes. send sends its i-th message and returns the seq it was
// acknowledged with; read, the i-th read of reader k, returns the newest seq of the page it
// read. A read that starts after a send was acknowledged must return that seq or a later one:
// any other is stale, and fails the test, as do an error and fewer than minReads reads. It
// returns the number of reads.
func raceReadYourWrites(t *testing.T, readers int, firstSeq int64, send func(i int) (int64, error), read func(k, i int) (int64, error)) int64 {
	t.Helper()
	const minReads = 10000
	var acked, reads, stale atomic.Int64
	acked.Store(firstSeq)
	var firstStale atomic.Value
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopAll := func() { stopOnce.Do(func() { close(stop) }) }
	deadline := time.Now().Add(3 * time.Minute)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			seq, err := send(i)
			if err != nil {
				t.Errorf("send: %v", err)
				stopAll()
				return
			}
			acked.Store(seq)
		}
	})
	for k := range readers {
		wg.Go(func() {
			for i := k; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				want := acked.Load() // before the read starts
				got, err := read(k, i)
				if err != nil {
					t.Errorf("read: %v", err)
					stopAll()
					return
				}
				if got < want {
					stale.Add(1)
					firstStale.CompareAndSwap(nil, fmt.Sprintf("a read started after seq %d was acknowledged got seq %d", want, got))
				}
				if reads.Add(1) >= minReads || time.Now().After(deadline) {
					stopAll()
				}
			}
		})
	}
	wg.Wait()
	if n := stale.Load(); n > 0 {
		t.Fatalf("%d stale reads of %d; first: %v", n, reads.Load(), firstStale.Load())
	}
	if reads.Load() < minReads {
		t.Fatalf("only %d reads before the deadline", reads.Load())
	}
	return reads.Load()
}

// newestSeq decodes the seq of the first item of conversation { messages { items { seq } } }.
func newestSeq(data []byte) (int64, error) {
	var out struct {
		Conversation struct {
			Messages struct{ Items []struct{ Seq int64 } }
		}
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, err
	}
	if len(out.Conversation.Messages.Items) == 0 {
		return 0, fmt.Errorf("no messages in %s", data)
	}
	return out.Conversation.Messages.Items[0].Seq, nil
}

// TestResponseCacheRedisHung: while Redis hangs, queries execute and succeed; a message sent
// meanwhile is in every read after, including once Redis answers again with the responses stored
// before the send still in it.
func TestResponseCacheRedisHung(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true})
	f := newFixture(t, e, 10)
	vars := map[string]any{"id": f.conv}
	e.cachedRead(f.alice, cachedPageQuery, vars)

	opts := *e.rdb.(*redis.Client).Options()
	opts.ReadTimeout = 3 * time.Second
	raw := redis.NewClient(&opts)
	defer raw.Close()
	if err := raw.Do(context.Background(), "CLIENT", "PAUSE", "1500", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var sent struct{ SendMessage struct{ Seq int } }
	e.as(f.bob, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "while hung"}) { seq } }`, map[string]any{"c": f.conv}, &sent)
	var hitsSeen bool
	for !hitsSeen {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("no response-cache hit 15s after the pause: %+v", e.responseCacheStats())
		}
		var resp gqlResponse
		n := e.hitsAfter(func() { resp = e.do("Bearer "+e.token(f.alice), cachedPageQuery, vars) })
		var d struct {
			Conversation struct{ LastMessage struct{ Seq int } }
		}
		if len(resp.Errors) > 0 || json.Unmarshal(resp.Data, &d) != nil {
			t.Fatalf("read %v after the send failed: %+v", time.Since(start), resp.Errors)
		}
		if d.Conversation.LastMessage.Seq != sent.SendMessage.Seq {
			t.Fatalf("%v after the send (hit: %v): lastMessage %d, want %d", time.Since(start), n == 1, d.Conversation.LastMessage.Seq, sent.SendMessage.Seq)
		}
		hitsSeen = n == 1 && time.Since(start) > 1500*time.Millisecond
		time.Sleep(20 * time.Millisecond)
	}
}
