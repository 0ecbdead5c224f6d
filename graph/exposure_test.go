package graph_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

// Writes do not multiply: 100 aliased sendMessage (or createConversation) in one request are
// refused as a whole, and store nothing.
func TestAliasedMutationsAreRefused(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{})

	var sends, creates strings.Builder
	sends.WriteString("mutation {")
	creates.WriteString("mutation {")
	for i := range 100 {
		fmt.Fprintf(&sends, ` s%d: sendMessage(input: {conversationId: "%d", body: "spam %d"}) { seq }`, i, conv, i)
		fmt.Fprintf(&creates, ` c%d: createConversation(input: {title: "spam %d", memberIds: ["%d"]}) { id }`, i, i, users[1])
	}
	for name, q := range map[string]string{"sends": sends.String() + "}", "creates": creates.String() + "}"} {
		res := srv.Client(users[0]).Must(t, q, nil)
		if !slices.Equal(res.Codes(), []string{"BAD_USER_INPUT"}) || string(res.Data) != "" && string(res.Data) != "null" {
			t.Fatalf("%s: %s", name, res.Body)
		}
		if !strings.Contains(res.Errors[0].Message, "at most 10 mutation fields") {
			t.Fatalf("%s: %q", name, res.Errors[0].Message)
		}
	}
	if n := dbtest.Count(t, srv.Direct, "SELECT count(*) FROM messages"); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
	if n := dbtest.Count(t, srv.Direct, "SELECT count(*) FROM conversations"); n != 1 {
		t.Fatalf("%d conversations, want the one of the fixture", n)
	}
	// Ten are allowed, and each costs a request of the rate limit (checked in
	// TestMutationFieldsCostRequests).
	var ten strings.Builder
	ten.WriteString("mutation {")
	for i := range 10 {
		fmt.Fprintf(&ten, ` s%d: sendMessage(input: {conversationId: "%d", body: "ok %d"}) { seq }`, i, conv, i)
	}
	srv.Client(users[0]).Query(t, ten.String()+"}", nil, nil)
}

// Each mutation field costs a request of the viewer's budget, and conversations have a lower
// budget of their own.
func TestMutationFieldsCostRequests(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.RateLimitDisabled, c.RateLimit, c.RateLimitBurst = false, 1, 12
		c.CreateConversationRate, c.CreateConversationBurst = 1, 3
	}})
	users := dbtest.Users(t, srv.Direct, "Alice", "Bob", "Carol")
	conv := dbtest.Conversation(t, srv.Direct, "General", users...)
	var q strings.Builder
	q.WriteString("mutation {")
	for i := range 10 {
		fmt.Fprintf(&q, ` s%d: sendMessage(input: {conversationId: "%d", body: "m %d"}) { seq }`, i, conv, i)
	}
	q.WriteString("}")
	// The burst of 12 pays for one request of 10 fields (1 for the request, 9 for the fields
	// past the first); the second is refused before anything runs.
	srv.Client(users[0]).Query(t, q.String(), nil, nil)
	res := srv.Client(users[0]).Must(t, q.String(), nil)
	if !slices.Contains(res.Codes(), "RATE_LIMITED") {
		t.Fatalf("second batch: %d %s", res.Status, res.Body)
	}
	if n := dbtest.Count(t, srv.Direct, "SELECT count(*) FROM messages"); n != 10 {
		t.Fatalf("%d messages stored, want 10", n)
	}

	create := fmt.Sprintf(`mutation { createConversation(input: {title: "new", memberIds: ["%d"]}) { id } }`, users[2])
	for i := range 3 {
		if res := srv.Client(users[1]).Must(t, create, nil); !res.OK() {
			t.Fatalf("creation %d: %s", i, res.Body)
		}
	}
	res = srv.Client(users[1]).Must(t, create, nil)
	if !slices.Contains(res.Codes(), "RATE_LIMITED") {
		t.Fatalf("fourth creation within the burst of 3: %s", res.Body)
	}
}

// Invalid UTF-8 and lone surrogates are refused with BAD_USER_INPUT on every transport, and
// nothing is stored (encoding/json would have stored U+FFFD).
func TestInvalidTextIsRefused(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{})
	mutation := `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`
	authz := "Bearer " + srv.Token(users[0])
	for _, body := range []string{`"a\ud800b"`, `"\udc00"`, "\"a\xffb\"", `"\u200b\u200b"`, `"bell\u0007"`} {
		c := srv.Client(users[0])
		raw := `{"query":` + jsonString(mutation) + `,"variables":{"c":"` + apptest.ID(conv) + `","b":` + body + `}}`
		res, err := c.Post(t.Context(), []byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Codes(), []string{"BAD_USER_INPUT"}) {
			t.Fatalf("POST body %s: %d %s", body, res.Status, res.Body)
		}
		ws := srv.Dial(t, users[0])
		ws.Send(apptest.WSMessage{Type: "subscribe", ID: "1", Payload: []byte(`{"query":` + jsonString(mutation) + `,"variables":{"c":"` + apptest.ID(conv) + `","b":` + body + `}}`)})
		m, _ := ws.Next(5 * time.Second)
		if !strings.Contains(string(m.Payload), "BAD_USER_INPUT") {
			t.Fatalf("WebSocket body %s: %s %s", body, m.Type, m.Payload)
		}
	}
	// A query string with bytes that are not UTF-8.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/query?query="+url.QueryEscape("{ me { name } }")+"%FF", nil)
	req.Header.Set("Authorization", authz)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("GET with invalid UTF-8: %d", res.StatusCode)
	}
	if n := dbtest.Count(t, srv.Direct, "SELECT count(*) FROM messages"); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
}

func jsonString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
