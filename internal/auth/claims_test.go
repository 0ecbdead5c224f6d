package auth

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// TestClaims runs every claim case through each algorithm: the claims rules are the same
// whatever signed the token.
func TestClaims(t *testing.T) {
	clk := newClock(time.Unix(1_800_000_000, 0))
	now := clk.now().Unix()
	p := newIDP(t, rsaJWK("r1", &rsaKey().PublicKey, nil), ecJWK("e1", &ecKey().PublicKey, nil))
	k := p.verifier(t, clk, Config{Secret: testSecret, Issuer: "https://idp.example", Audience: "threadline"})

	// base is a valid payload; each case replaces members of it (a raw JSON value each, "" to
	// remove one) or, with raw, is the whole payload.
	base := map[string]string{
		"sub": `"1"`, "exp": fmt.Sprint(now + 3600), "iat": fmt.Sprint(now), "nbf": fmt.Sprint(now),
		"iss": `"https://idp.example"`, "aud": `"threadline"`,
	}
	cases := []struct {
		name   string
		set    map[string]string
		raw    string
		kind   error // nil: accepted
		wantID int64
	}{
		{name: "good", wantID: 1},
		{name: "only sub exp iss aud", set: map[string]string{"iat": "", "nbf": ""}, wantID: 1},
		{name: "aud in an array", set: map[string]string{"aud": `["other","threadline"]`}, wantID: 1},
		{name: "fractional exp", set: map[string]string{"exp": fmt.Sprint(now+60) + ".5"}, wantID: 1},
		{name: "exp as a JSON exponent", set: map[string]string{"exp": "1.8000036e9"}, wantID: 1},
		{name: "iat within the leeway", set: map[string]string{"iat": fmt.Sprint(now + 4)}, wantID: 1},
		{name: "nbf within the leeway", set: map[string]string{"nbf": fmt.Sprint(now + 4)}, wantID: 1},
		{name: "exp passed within the leeway", set: map[string]string{"exp": fmt.Sprint(now - 4)}, wantID: 1},
		{name: "largest user id", set: map[string]string{"sub": `"9223372036854775807"`}, wantID: 9223372036854775807},
		{name: "sub with a JSON escape", set: map[string]string{"sub": `"\u0034\u0032"`}, wantID: 42},
		{name: "other claims ignored", set: map[string]string{"jti": `"x"`, "scope": `["a",1,null]`}, wantID: 1},

		{name: "missing exp", set: map[string]string{"exp": ""}, kind: errClaims},
		{name: "string exp", set: map[string]string{"exp": fmt.Sprintf(`"%d"`, now+3600)}, kind: errClaims},
		{name: "string nbf", set: map[string]string{"nbf": fmt.Sprintf(`"%d"`, now)}, kind: errClaims},
		{name: "string iat", set: map[string]string{"iat": fmt.Sprintf(`"%d"`, now)}, kind: errClaims},
		{name: "RFC 3339 exp", set: map[string]string{"exp": `"2030-01-01T00:00:00Z"`}, kind: errClaims},
		{name: "null exp", set: map[string]string{"exp": "null"}, kind: errClaims},
		{name: "boolean exp", set: map[string]string{"exp": "true"}, kind: errClaims},
		{name: "negative iat", set: map[string]string{"iat": "-1"}, kind: errClaims},
		{name: "exp beyond year 9999", set: map[string]string{"exp": "1e300"}, kind: errClaims},
		{name: "exp twice", raw: fmt.Sprintf(`{"sub":"1","exp":%d,"exp":%d,"iss":"https://idp.example","aud":"threadline"}`, now-3600, now+3600), kind: errClaims},
		{name: "payload not an object", raw: `["sub","1"]`, kind: errClaims},
		{name: "data after the payload", raw: fmt.Sprintf(`{"sub":"1","exp":%d,"iss":"https://idp.example","aud":"threadline"}{}`, now+3600), kind: errClaims},

		{name: "expired", set: map[string]string{"exp": fmt.Sprint(now - 60)}, kind: errExpired},
		{name: "expired by exactly the leeway", set: map[string]string{"exp": fmt.Sprint(now - 5)}, kind: errExpired},
		{name: "not yet valid", set: map[string]string{"nbf": fmt.Sprint(now + 60)}, kind: errNotYetValid},
		{name: "issued in the future", set: map[string]string{"iat": fmt.Sprint(now + 60)}, kind: errNotYetValid},

		{name: "missing sub", set: map[string]string{"sub": ""}, kind: errClaims},
		{name: "numeric sub", set: map[string]string{"sub": "1"}, kind: errClaims},
		{name: "sub +1", set: map[string]string{"sub": `"+1"`}, kind: errClaims},
		{name: "sub 01", set: map[string]string{"sub": `"01"`}, kind: errClaims},
		{name: "sub space 1", set: map[string]string{"sub": `" 1"`}, kind: errClaims},
		{name: "sub 1 space", set: map[string]string{"sub": `"1 "`}, kind: errClaims},
		{name: "sub 1.0", set: map[string]string{"sub": `"1.0"`}, kind: errClaims},
		{name: "sub 0", set: map[string]string{"sub": `"0"`}, kind: errClaims},
		{name: "sub -1", set: map[string]string{"sub": `"-1"`}, kind: errClaims},
		{name: "sub empty", set: map[string]string{"sub": `""`}, kind: errClaims},
		{name: "sub 1e3", set: map[string]string{"sub": `"1e3"`}, kind: errClaims},
		{name: "sub 0x1", set: map[string]string{"sub": `"0x1"`}, kind: errClaims},
		{name: "sub full-width digit", set: map[string]string{"sub": `"１"`}, kind: errClaims},
		{name: "sub beyond int64", set: map[string]string{"sub": `"9223372036854775808"`}, kind: errClaims},
		{name: "sub a name", set: map[string]string{"sub": `"alice"`}, kind: errClaims},

		{name: "wrong iss", set: map[string]string{"iss": `"https://evil.example"`}, kind: errClaims},
		{name: "iss with a trailing slash", set: map[string]string{"iss": `"https://idp.example/"`}, kind: errClaims},
		{name: "missing iss", set: map[string]string{"iss": ""}, kind: errClaims},
		{name: "iss not a string", set: map[string]string{"iss": `["https://idp.example"]`}, kind: errClaims},
		{name: "wrong aud", set: map[string]string{"aud": `"another-service"`}, kind: errClaims},
		{name: "aud array without ours", set: map[string]string{"aud": `["a","b"]`}, kind: errClaims},
		{name: "empty aud array", set: map[string]string{"aud": `[]`}, kind: errClaims},
		{name: "missing aud", set: map[string]string{"aud": ""}, kind: errClaims},
		{name: "aud of numbers", set: map[string]string{"aud": `[1]`}, kind: errClaims},
		{name: "aud prefix", set: map[string]string{"aud": `"threadline-admin"`}, kind: errClaims},
	}
	algs := []struct {
		name string
		sign func(payload string) string
	}{
		{"HS256", func(pl string) string { return forge(`{"alg":"HS256","typ":"JWT"}`, pl, hs256([]byte(testSecret))) }},
		{"RS256", func(pl string) string { return jwxSign(t, jwa.RS256(), rsaKey(), "r1", pl) }},
		{"ES256", func(pl string) string { return jwxSign(t, jwa.ES256(), ecKey(), "e1", pl) }},
	}
	for _, tc := range cases {
		payload := tc.raw
		if payload == "" {
			payload = jsonObject(base, tc.set)
		}
		for _, alg := range algs {
			t.Run(tc.name+"/"+alg.name, func(t *testing.T) {
				id, err := k.Verify(context.Background(), alg.sign(payload))
				if tc.kind != nil {
					wantRefused(t, err, tc.kind)
					return
				}
				if err != nil || id.UserID != tc.wantID {
					t.Fatalf("Verify = %+v, %v; want user %d\npayload %s", id, err, tc.wantID, payload)
				}
			})
		}
	}
}

// jsonObject writes base with set applied (a value of "" removes the member), in a fixed order.
func jsonObject(base, set map[string]string) string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range set {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out := "{"
	for _, k := range sortedKeys(m) {
		if len(out) > 1 {
			out += ","
		}
		out += fmt.Sprintf("%q:%s", k, m[k])
	}
	return out + "}"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestExpiryIsTheExpClaim(t *testing.T) {
	clk := newClock(time.Now())
	p := newIDP(t, ecJWK("e1", &ecKey().PublicKey, nil))
	k := p.verifier(t, clk, Config{})
	exp := clk.now().Add(10 * time.Minute).Truncate(time.Second)
	tok := jwxSign(t, jwa.ES256(), ecKey(), "e1", fmt.Sprintf(`{"sub":"12","exp":%d}`, exp.Unix()))
	ctx := k.Authenticate(context.Background(), "Bearer "+tok)
	got, ok := Expiry(ctx)
	if !ok || !got.Equal(exp) {
		t.Fatalf("Expiry = %v, %v; want %v", got, ok, exp)
	}
	if id, err := Viewer(ctx); err != nil || id != 12 {
		t.Fatalf("Viewer = %d, %v", id, err)
	}
}
