package graph_test

// The response cache on a Redis Cluster: responses live in their viewer's slot, the
// conversations' generations in their own, and a lookup checks the latter in a second step
// (package respcache). These tests run the production wiring against a three-master cluster
// of their own.

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

// redisClusterURL starts a three-master Redis Cluster of the test's own (stopped when the test
// ends) and returns the REDIS_URL that names it.
func redisClusterURL(t *testing.T) string {
	t.Helper()
	testenv.Stack(t) // skips under -short
	addrs, stop, err := devstack.StartRedisCluster(context.Background(), t.TempDir(), [3]int{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stopping the redis cluster: %v", err)
		}
	})
	return "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
}

// nodeOf returns the address of the master that holds key.
func nodeOf(t *testing.T, cc *redis.ClusterClient, key string) string {
	t.Helper()
	c, err := cc.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return c.Options().Addr
}

// TestResponseCacheOnRedisCluster: on a Redis Cluster the response cache serves hits, and never
// a response that a send, an edit or a change of members made out of date, though what changed
// lives on another node than the response.
func TestResponseCacheOnRedisCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true, redisURL: redisClusterURL(t)})
	cc, ok := e.rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("the server's Redis is a %T, want a cluster client", e.rdb)
	}
	if s := e.responseCacheStats(); s.Local != nil {
		t.Fatalf("the in-process tier is on against a cluster: %+v", s.Local)
	}
	alice, bob, carol := aliceBobCarol(t, e.direct)
	// Conversations enough for their generations to spread over the nodes; far is one whose
	// generation lives on another node than Alice's responses (resp:{u<alice>}:…).
	aliceNode := nodeOf(t, cc, fmt.Sprintf("resp:{u%d}:x", alice))
	var convs []int64
	nodes := map[string]bool{}
	var far int64
	for i := range 8 {
		c := dbtest.Conversation(t, e.direct, fmt.Sprint("c", i), alice, bob)
		dbtest.Messages(t, e.direct, c, []int64{alice, bob}, 12)
		convs = append(convs, c)
		node := nodeOf(t, cc, cache.GenerationKey(c))
		nodes[node] = true
		if far == 0 && node != aliceNode {
			far = c
		}
	}
	if len(nodes) < 2 || far == 0 {
		t.Fatalf("the generations of %d conversations all live on one node (%v), Alice's responses on %s", len(convs), nodes, aliceNode)
	}
	near := convs[0]
	if near == far {
		near = convs[1]
	}
	page := func(c int64) map[string]any { return map[string]any{"id": c} }
	// Two conversations in one response: its generations are read from two slots.
	const twoQuery = `query($a: ID!, $b: ID!) { a: conversation(id: $a) { messages(limit: 3) { items { seq body } } } b: conversation(id: $b) { messages(limit: 3) { items { seq body } } } }`
	two := map[string]any{"a": near, "b": far}
	// notHit reads q as user, fails the test if it was served from the cache, and returns data.
	notHit := func(t *testing.T, user int64, q string, vars map[string]any) json.RawMessage {
		t.Helper()
		var got gqlResponse
		if n := e.hitsAfter(func() { got = e.do("Bearer "+e.token(user), q, vars) }); n != 0 {
			t.Fatalf("served from the cache after the change: %s", got.Data)
		}
		if len(got.Errors) > 0 {
			t.Fatalf("errors: %+v", got.Errors)
		}
		return got.Data
	}
	hit := func(t *testing.T, user int64, q string, vars map[string]any) {
		t.Helper()
		if n := e.hitsAfter(func() { e.do("Bearer "+e.token(user), q, vars) }); n != 1 {
			t.Fatalf("not served from the cache though nothing it read changed: %+v", e.responseCacheStats())
		}
	}
	type topPage struct {
		Conversation struct {
			Messages    struct{ Items []struct{ Seq int64 } }
			LastMessage struct{ Seq int64 }
		}
	}
	top := func(t *testing.T, data json.RawMessage) topPage {
		t.Helper()
		var p topPage
		if err := json.Unmarshal(data, &p); err != nil || len(p.Conversation.Messages.Items) == 0 {
			t.Fatalf("page %s: %v", data, err)
		}
		return p
	}

	t.Run("hits", func(t *testing.T) {
		for _, c := range convs {
			e.cachedRead(alice, cachedPageQuery, page(c))
		}
		e.cachedRead(alice, twoQuery, two)
	})

	t.Run("sendMessage", func(t *testing.T) {
		staleBefore := e.responseCacheStats().StaleRejected
		var sent struct{ SendMessage struct{ Seq int64 } }
		e.as(bob, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "fresh"}) { seq } }`, map[string]any{"c": far}, &sent)
		p := top(t, notHit(t, alice, cachedPageQuery, page(far)))
		if p.Conversation.Messages.Items[0].Seq != sent.SendMessage.Seq || p.Conversation.LastMessage.Seq != sent.SendMessage.Seq {
			t.Fatalf("after sending seq %d: %+v", sent.SendMessage.Seq, p)
		}
		if data := notHit(t, alice, twoQuery, two); !json.Valid(data) {
			t.Fatalf("two conversations: %s", data)
		}
		if s := e.responseCacheStats(); s.StaleRejected < staleBefore+2 {
			t.Fatalf("the stored responses were not found and refused as stale: %+v", s)
		}
		hit(t, alice, cachedPageQuery, page(near))
		e.cachedRead(alice, cachedPageQuery, page(far))
		e.cachedRead(alice, twoQuery, two)
	})

	t.Run("editMessage", func(t *testing.T) {
		var sent struct{ SendMessage struct{ ID string } }
		e.as(bob, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "typo"}) { id } }`, map[string]any{"c": far}, &sent)
		const bodies = `query($id: ID!) { conversation(id: $id) { messages(limit: 2) { items { id body } } } }`
		e.cachedRead(alice, bodies, page(far))
		e.cachedRead(alice, cachedPageQuery, page(near))
		e.as(bob, `mutation($id: ID!) { editMessage(input: {id: $id, body: "fixed"}) { id } }`, map[string]any{"id": sent.SendMessage.ID}, nil)
		var got struct {
			Conversation struct {
				Messages struct{ Items []struct{ ID, Body string } }
			}
		}
		if err := json.Unmarshal(notHit(t, alice, bodies, page(far)), &got); err != nil || len(got.Conversation.Messages.Items) == 0 ||
			got.Conversation.Messages.Items[0].ID != sent.SendMessage.ID || got.Conversation.Messages.Items[0].Body != "fixed" {
			t.Fatalf("after the edit: %+v (%v)", got, err)
		}
		hit(t, alice, cachedPageQuery, page(near))
	})

	t.Run("members", func(t *testing.T) {
		const titleQuery = `query($id: ID!) { conversation(id: $id) { id title } }`
		if got := e.cachedRead(carol, titleQuery, page(far)); got != `{"conversation":null}` {
			t.Fatalf("Carol before she is added: %s", got)
		}
		e.cachedRead(alice, cachedPageQuery, page(far))
		e.cachedRead(alice, cachedPageQuery, page(near))
		e.as(alice, addMembersMut, vars{"c": far, "u": []string{fmt.Sprint(carol)}}, nil)
		if got := notHit(t, carol, titleQuery, page(far)); string(got) == `{"conversation":null}` {
			t.Fatalf("Carol, now a member, got the stored null: %s", got)
		}
		top(t, notHit(t, alice, cachedPageQuery, page(far))) // the conversation's generation moved
		hit(t, alice, cachedPageQuery, page(near))
		e.cachedRead(carol, titleQuery, page(far))
		e.as(alice, removeMemberMut, vars{"c": far, "u": fmt.Sprint(carol)}, nil)
		if got := notHit(t, carol, titleQuery, page(far)); string(got) != `{"conversation":null}` {
			t.Fatalf("Carol, removed, got the stored conversation: %s", got)
		}
	})

	t.Run("createConversation", func(t *testing.T) {
		const titleQuery = `query($id: ID!) { conversation(id: $id) { id title } }`
		next := convs[len(convs)-1] + 1
		if got := e.cachedRead(carol, titleQuery, page(next)); got != `{"conversation":null}` {
			t.Fatalf("before: %s", got)
		}
		e.cachedRead(bob, titleQuery, page(near))
		var created struct{ CreateConversation struct{ ID string } }
		e.as(alice, `mutation($m: [ID!]) { createConversation(input: {title: "new", memberIds: $m}) { id } }`,
			map[string]any{"m": []string{fmt.Sprint(carol)}}, &created)
		if created.CreateConversation.ID != fmt.Sprint(next) {
			t.Fatalf("created %s, want %d", created.CreateConversation.ID, next)
		}
		if got := notHit(t, carol, titleQuery, page(next)); string(got) == `{"conversation":null}` {
			t.Fatalf("Carol, now a member, got the stored null: %s", got)
		}
		hit(t, bob, titleQuery, page(near))
	})

	// The response is stored on a node that answers, the generation it recorded, moved since, on
	// one that hangs: the second step of the lookup fails, and the query executes (reading the
	// page from PostgreSQL, since the history cache cannot reach that node either) rather than
	// serving the stored response. Once the node answers again, hits come back.
	t.Run("a node hangs", func(t *testing.T) {
		e.cachedRead(alice, cachedPageQuery, page(far))
		var sent struct{ SendMessage struct{ Seq int64 } }
		e.as(bob, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "before the hang"}) { seq } }`, map[string]any{"c": far}, &sent)
		node, err := cc.MasterForKey(context.Background(), cache.GenerationKey(far))
		if err != nil {
			t.Fatal(err)
		}
		errorsBefore := e.responseCacheStats().Errors
		if err := node.Do(context.Background(), "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
			t.Fatal(err)
		}
		p := top(t, notHit(t, alice, cachedPageQuery, page(far)))
		if p.Conversation.Messages.Items[0].Seq != sent.SendMessage.Seq {
			t.Fatalf("while the generation's node hangs: newest seq %d, want %d", p.Conversation.Messages.Items[0].Seq, sent.SendMessage.Seq)
		}
		if s := e.responseCacheStats(); s.Errors == errorsBefore {
			t.Fatalf("the lookup did not fail while the node hung: %+v", s)
		}
		deadline := time.Now().Add(15 * time.Second)
		for e.hitsAfter(func() { e.do("Bearer "+e.token(alice), cachedPageQuery, page(far)) }) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no hit 15s after the pause: %+v", e.responseCacheStats())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestResponseCacheReadYourWritesOnRedisCluster is the race of
// TestLocalTierReadYourWritesAcrossInstances on a Redis Cluster: two instances, messages sent
// through either, readers on either; a read that starts after a send's answer contains that
// message, with every lookup checking the conversation's generation on its own node after
// fetching the response from the viewer's. 0 stale reads in 10,000.
func TestResponseCacheReadYourWritesOnRedisCluster(t *testing.T) {
	t.Parallel()
	d := newDeploymentOn(t, redisClusterURL(t))
	sa, sb := readYourWritesRace(t, d)
	for name, s := range map[string]struct {
		hits, stale int64
		local       bool
	}{"A": {sa.Hits, sa.StaleRejected, sa.Local != nil}, "B": {sb.Hits, sb.StaleRejected, sb.Local != nil}} {
		if s.hits == 0 || s.stale == 0 || s.local {
			t.Errorf("instance %s: hits %d, stale rejected %d, in-process tier %v; want hits, stale rejections, no tier", name, s.hits, s.stale, s.local)
		}
	}
}
