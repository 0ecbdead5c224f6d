package graph_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/threadline/threadline/app/apptest"
)

func TestBadTokensAreUnauthenticated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 3)
	sub := fmt.Sprint(f.alice)

	sign := func(secret string, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	b64 := func(v any) string {
		raw, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	future := time.Now().Add(time.Hour).Unix()
	tokens := map[string]string{
		"missing":      "",
		"not bearer":   "Basic YWxpY2U6cGFzcw==",
		"malformed":    "Bearer not.a.jwt",
		"garbage":      "Bearer " + strings.Repeat("A", 40),
		"expired":      "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(-time.Hour).Unix()}),
		"no exp":       "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": sub}),
		"wrong key":    "Bearer " + sign("another-secret-0123456789", jwt.MapClaims{"sub": sub, "exp": future}),
		"future nbf":   "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": sub, "exp": future, "nbf": future - 60}),
		"alg none":     "Bearer " + b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(map[string]any{"sub": sub, "exp": future}) + ".",
		"bad subject":  "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": "alice", "exp": future}),
		"unknown user": "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": "987654", "exp": future}),
		"HS512 same key": "Bearer " + func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": sub, "exp": future}).SignedString([]byte(apptest.Secret))
			return s
		}(),
	}
	queries := map[string]string{
		"me":            `{ me { id } }`,
		"conversation":  fmt.Sprintf(`{ conversation(id: %d) { id } }`, f.conv),
		"conversations": `{ conversations { edges { cursor } } }`,
		"sendMessage":   fmt.Sprintf(`mutation { sendMessage(input: {conversationId: %d, body: "x"}) { id } }`, f.conv),
		"create":        `mutation { createConversation(input: {title: "x"}) { id } }`,
	}
	before := snapshot(t, e)
	for tname, authz := range tokens {
		for qname, q := range queries {
			if tname == "unknown user" && qname != "me" {
				continue // a valid token of a user that does not exist: see below
			}
			t.Run(tname+"/"+qname, func(t *testing.T) {
				resp := e.do(authz, q, nil)
				if codes := resp.codes(); len(codes) != 1 || codes[0] != "UNAUTHENTICATED" {
					t.Fatalf("codes %v, want [UNAUTHENTICATED]; data %s", codes, resp.Data)
				}
			})
		}
	}
	if snapshot(t, e) != before {
		t.Fatal("an unauthenticated request changed the database")
	}
	// Anonymous requests still reach the executor.
	resp := e.do("", `{ __typename }`, nil)
	if len(resp.Errors) > 0 || string(resp.Data) != `{"__typename":"Query"}` {
		t.Fatalf("anonymous __typename: %s %+v", resp.Data, resp.Errors)
	}
}

func TestNonMemberSeesWhatAStrangerToAMissingConversationSees(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 3)
	missing := f.conv + 1000

	for _, q := range []string{
		`query($id: ID!) { conversation(id: $id) { id title messages { items { body } } history { edges { cursor } } } }`,
	} {
		a := e.do("Bearer "+e.token(f.carol), q, map[string]any{"id": f.conv})
		b := e.do("Bearer "+e.token(f.carol), q, map[string]any{"id": missing})
		if string(a.Data) != `{"conversation":null}` || len(a.Errors) != 0 {
			t.Fatalf("non-member: %s %+v", a.Data, a.Errors)
		}
		if string(a.Data) != string(b.Data) || len(b.Errors) != 0 {
			t.Fatalf("non-member %s vs missing %s", a.Data, b.Data)
		}
	}
	send := `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "intrude"}) { id } }`
	before := snapshot(t, e)
	a := e.do("Bearer "+e.token(f.carol), send, map[string]any{"c": f.conv})
	b := e.do("Bearer "+e.token(f.carol), send, map[string]any{"c": missing})
	if len(a.Errors) != 1 || len(b.Errors) != 1 {
		t.Fatalf("errors %+v / %+v", a.Errors, b.Errors)
	}
	if a.Errors[0].Message != b.Errors[0].Message || a.codes()[0] != "NOT_FOUND" || b.codes()[0] != "NOT_FOUND" {
		t.Fatalf("non-member %+v vs missing %+v", a.Errors[0], b.Errors[0])
	}
	if snapshot(t, e) != before {
		t.Fatal("a refused send changed the database")
	}
}
