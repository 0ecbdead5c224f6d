package graph_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/threadline/threadline/app/apptest"
)

// A user guessing other conversations' IDs, through every query and mutation,
// learns nothing: a conversation they are not in answers exactly as one that does not exist, and
// nothing is read out or written. (Subscriptions: TestSubscriptionRefusals. Bad tokens:
// TestBadTokensAreUnauthenticated. Oversized and deeply nested queries:
// TestQueryLimitsRefuseBeforeAnySQL and TestBodyOverLimitIs413.)
func TestGuessingConversationIDsLeaksNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true})
	f := newFixture(t, e, 12)
	mallory := "Bearer " + e.token(f.carol)
	var aliceCursor struct {
		Conversation struct {
			History struct{ PageInfo struct{ EndCursor string } }
		}
	}
	e.as(f.alice, `query($id: ID!) { conversation(id: $id) { history(first: 3) { pageInfo { endCursor } } } }`, map[string]any{"id": f.conv}, &aliceCursor)
	cursor := aliceCursor.Conversation.History.PageInfo.EndCursor
	missing := f.conv + 1000
	before := snapshot(t, e)

	queries := []string{
		`query($id: ID!) { conversation(id: $id) { id title createdAt members { id name } lastMessage { id body } messages(limit: 100) { items { body } hasMore } history { edges { cursor node { body } } } } }`,
		`query($id: ID!) { conversation(id: $id) { messages(limit: 5, offset: 3) { items { body } } } }`,
		`query($id: ID!, $c: String) { conversation(id: $id) { history(first: 5, before: $c) { edges { node { body } } } } }`,
		`query($id: ID!) { conversation(id: $id) { lastMessage { body sender { name } } } }`,
	}
	for i, q := range queries {
		var answers []string
		for _, id := range []int64{f.conv, missing} {
			for range 2 { // the second may come from the response cache
				resp := e.do(mallory, q, map[string]any{"id": id, "c": cursor})
				if len(resp.Errors) != 0 || string(resp.Data) != `{"conversation":null}` {
					t.Fatalf("query %d, id %d: %s %+v", i, id, resp.Data, resp.Errors)
				}
				answers = append(answers, string(resp.Data))
			}
		}
		if len(slices.Compact(slices.Clone(answers))) != 1 {
			t.Fatalf("query %d: answers differ: %v", i, answers)
		}
	}

	// Many guesses in one request: every one null.
	var guesses strings.Builder
	guesses.WriteString("{")
	for i := range 50 {
		fmt.Fprintf(&guesses, " g%d: conversation(id: %d) { title messages { items { body } } }", i, f.conv+int64(i))
	}
	guesses.WriteString(" }")
	resp := e.do(mallory, guesses.String(), nil)
	if len(resp.Errors) != 0 || strings.Contains(string(resp.Data), "title") || strings.Contains(string(resp.Data), "body") {
		t.Fatalf("guesses: %s %+v", resp.Data, resp.Errors)
	}

	// The list holds only one's own conversations, whatever cursor one brings.
	for _, after := range []any{nil, cursor, "bm90IGEgY3Vyc29y"} {
		resp := e.do(mallory, `query($a: String) { conversations(first: 100, after: $a) { edges { node { id } } } }`, map[string]any{"a": after})
		if strings.Contains(string(resp.Data), fmt.Sprintf(`"%d"`, f.conv)) {
			t.Fatalf("after %v: the list shows another's conversation: %s", after, resp.Data)
		}
		for _, err := range resp.Errors {
			if err.Extensions["code"] != "BAD_USER_INPUT" || leaksInternals(err.Message) {
				t.Fatalf("after %v: %+v", after, resp.Errors)
			}
		}
	}

	// Writing into it: the same NOT_FOUND for a conversation one is not in and a missing one.
	var msgs []string
	for _, id := range []int64{f.conv, missing} {
		resp := e.do(mallory, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "guess", clientMessageId: "g-1"}) { id seq } }`, map[string]any{"c": id})
		if codes := resp.codes(); len(codes) != 1 || codes[0] != "NOT_FOUND" || (len(resp.Data) > 0 && string(resp.Data) != "null") {
			t.Fatalf("send to %d: %s %+v", id, resp.Data, resp.Errors)
		}
		msgs = append(msgs, resp.Errors[0].Message)
	}
	if msgs[0] != msgs[1] {
		t.Fatalf("send: %q vs %q", msgs[0], msgs[1])
	}
	// IDs that are not IDs are bad input, and say nothing more.
	for _, id := range []string{"0", "-1", "abc", "99999999999999999999", "1e3", ""} {
		resp := e.do(mallory, `query($id: ID!) { conversation(id: $id) { title } }`, map[string]any{"id": id})
		if codes := resp.codes(); len(codes) != 1 || codes[0] != "BAD_USER_INPUT" || leaksInternals(resp.Errors[0].Message) {
			t.Fatalf("id %q: %s %+v", id, resp.Data, resp.Errors)
		}
	}
	if snapshot(t, e) != before {
		t.Fatal("guessing changed the database")
	}
}

// algNoneToken is an unsigned token ("alg": "none") for userID.
func algNoneToken(userID int64) string {
	b64 := func(v any) string {
		raw, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	return b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." +
		b64(map[string]any{"sub": fmt.Sprint(userID), "exp": time.Now().Add(time.Hour).Unix()}) + "."
}

// futureNbfToken is a well-signed token for userID that is not valid for another minute.
func futureNbfToken(t testing.TB, userID int64) string {
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		// An hour ahead: a parallel test may wait its turn for a long time on two cores.
		"sub": fmt.Sprint(userID), "exp": now.Add(2 * time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix(),
	}).SignedString([]byte(apptest.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
