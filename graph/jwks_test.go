package graph_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

// A server configured with an identity provider's JWKS (JWT_JWKS_URL, served here by the test)
// accepts its RS256 and ES256 tokens, picks up a rotated key, and refuses alg mismatches,
// unknown kids and HS256 tokens signed with the public key.
func TestJWKSTokensThroughTheServer(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var published atomic.Pointer[[]byte]
	publish := func(keys map[string]any) {
		set := jwk.NewSet()
		for kid, k := range keys {
			pub, err := jwk.Import(k)
			if err != nil {
				t.Fatal(err)
			}
			_ = pub.Set(jwk.KeyIDKey, kid)
			_ = set.AddKey(pub)
		}
		b, err := json.Marshal(set)
		if err != nil {
			t.Fatal(err)
		}
		published.Store(&b)
	}
	publish(map[string]any{"rsa-1": &rsaKey.PublicKey, "ec-1": &ecKey.PublicKey})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(*published.Load()) }))
	t.Cleanup(idp.Close)

	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.JWTJWKSURL, c.JWTAudience, c.JWTIssuer = idp.URL+"/.well-known/jwks.json", "threadline", "https://idp.example.com/"
	}})
	users := dbtest.Users(t, srv.Direct, "Alice")
	sign := func(alg jwa.SignatureAlgorithm, kid string, key any) string {
		t.Helper()
		now := time.Now().Unix()
		payload, _ := json.Marshal(map[string]any{
			"sub": apptest.ID(users[0]), "exp": now + 600, "iat": now, "aud": "threadline", "iss": "https://idp.example.com/",
		})
		hdr := jws.NewHeaders()
		if kid != "" {
			_ = hdr.Set(jws.KeyIDKey, kid)
		}
		tok, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatal(err)
		}
		return string(tok)
	}
	me := func(token string) []string {
		t.Helper()
		c := srv.Client(0)
		c.Authorization = "Bearer " + token
		res := c.Must(t, `{ me { name } }`, nil)
		return res.Codes()
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))})

	if codes := me(sign(jwa.RS256(), "rsa-1", rsaKey)); len(codes) != 0 {
		t.Fatalf("RS256: %v", codes)
	}
	if codes := me(sign(jwa.ES256(), "ec-1", ecKey)); len(codes) != 0 {
		t.Fatalf("ES256: %v", codes)
	}
	for name, tok := range map[string]string{
		"RS256 header on the EC key":        sign(jwa.RS256(), "ec-1", rsaKey),
		"ES256 header on the RSA key":       sign(jwa.ES256(), "rsa-1", ecKey),
		"unknown kid":                       sign(jwa.RS256(), "nobody", rsaKey),
		"HS256 with the public key":         sign(jwa.HS256(), "rsa-1", pubPEM),
		"HS256 with the public key, no kid": sign(jwa.HS256(), "", pubPEM),
	} {
		if codes := me(tok); !slices.Equal(codes, []string{"UNAUTHENTICATED"}) {
			t.Errorf("%s: %v, want UNAUTHENTICATED", name, codes)
		}
	}
	// The provider rotates its key: a token with the new kid is accepted once the JWKS is
	// fetched again (an unknown kid refetches at most every 5 s).
	publish(map[string]any{"rsa-2": &rotated.PublicKey, "ec-1": &ecKey.PublicKey})
	deadline := time.Now().Add(15 * time.Second)
	for codes := me(sign(jwa.RS256(), "rsa-2", rotated)); len(codes) != 0; codes = me(sign(jwa.RS256(), "rsa-2", rotated)) {
		if time.Now().After(deadline) {
			t.Fatalf("the rotated key is still refused: %v", codes)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
