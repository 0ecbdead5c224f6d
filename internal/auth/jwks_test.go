package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// idp is an identity provider's JWKS endpoint, served over TLS by the test.
type idp struct {
	srv     *httptest.Server
	body    atomic.Pointer[[]byte]
	status  atomic.Int32  // 0: 200
	hang    atomic.Bool   // answer nothing until the client gives up or release is closed
	release chan struct{} // see hang
	fetches atomic.Int32
}

func newIDP(t *testing.T, keys ...map[string]any) *idp {
	p := &idp{release: make(chan struct{})}
	p.serve(keys...)
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		if p.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-p.release:
			}
			return
		}
		if s := p.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*p.body.Load())
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// serve makes the endpoint publish keys from now on.
func (p *idp) serve(keys ...map[string]any) {
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	p.body.Store(&b)
}

// verifier returns Keys that use p's JWKS with cfg, on clk, once the initial fetch has ended.
func (p *idp) verifier(t *testing.T, clk *clock, cfg Config) *Keys {
	t.Helper()
	cfg.JWKSURL = p.srv.URL + "/.well-known/jwks.json"
	cfg.HTTPClient = p.srv.Client()
	cfg.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	k, err := newKeys(cfg, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	settle(k)
	return k
}

// settle waits for a running JWKS fetch to end. It starts none unless the clock has moved
// past the refresh interval.
func settle(k *Keys) {
	if done := k.jwks.refresh(); done != nil {
		<-done
	}
}

var b64 = base64.RawURLEncoding.EncodeToString

// rsaJWK and ecJWK are JWKS entries for public keys, with extra members merged in.
func rsaJWK(kid string, pub *rsa.PublicKey, extra map[string]any) map[string]any {
	return jwkEntry(map[string]any{"kty": "RSA", "kid": kid, "n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}, extra)
}

func ecJWK(kid string, pub *ecdsa.PublicKey, extra map[string]any) map[string]any {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	size := (len(raw) - 1) / 2
	return jwkEntry(map[string]any{"kty": "EC", "kid": kid, "crv": pub.Curve.Params().Name, "x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:])}, extra)
}

func jwkEntry(m, extra map[string]any) map[string]any {
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// jwxSign signs payload as a library would, for the interoperability of accepted tokens.
func jwxSign(t testing.TB, alg jwa.SignatureAlgorithm, key any, kid, payload string) string {
	t.Helper()
	hdr := jws.NewHeaders()
	if kid != "" {
		if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		t.Fatal(err)
	}
	tok, err := jws.Sign([]byte(payload), jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func TestJWKSTokens(t *testing.T) {
	clk := newClock(time.Now())
	p := newIDP(t, rsaJWK("r1", &rsaKey().PublicKey, nil), ecJWK("e1", &ecKey().PublicKey, map[string]any{"alg": "ES256", "use": "sig"}),
		jwkEntry(map[string]any{"kty": "oct", "kid": "o1", "k": b64([]byte(octSecret))}, nil))
	now := clk.now()
	good := claimsAt(now, nil)

	rsaPub, _ := x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	rsaPKCS1 := x509.MarshalPKCS1PublicKey(&rsaKey().PublicKey)
	rsaJSON, _ := json.Marshal(rsaJWK("r1", &rsaKey().PublicKey, nil))

	accepted := []tokenCase{
		{"RS256", jwxSign(t, jwa.RS256(), rsaKey(), "r1", good), nil, nil},
		{"ES256", jwxSign(t, jwa.ES256(), ecKey(), "e1", good), nil, nil},
		{"RS256 forged by hand", forge(`{"alg":"RS256","kid":"r1"}`, good, rs256(rsaKey())), nil, nil},
		{"ES256 forged by hand", forge(`{"alg":"ES256","kid":"e1"}`, good, es256(ecKey())), nil, nil},
	}
	refused := []tokenCase{
		{"alg none", forge(`{"alg":"none","kid":"r1"}`, good, unsigned), errAlgorithm, nil},
		{"alg None", forge(`{"alg":"None","kid":"r1"}`, good, unsigned), errAlgorithm, nil},
		{"alg none with an RS256 signature", forge(`{"alg":"none","kid":"r1"}`, good, rs256(rsaKey())), errAlgorithm, nil},
		{"RS256 header on an EC key", forge(`{"alg":"RS256","kid":"e1"}`, good, rs256(rsaKey())), errAlgorithm, nil},
		{"ES256 header on an RSA key", forge(`{"alg":"ES256","kid":"r1"}`, good, es256(ecKey())), errAlgorithm, nil},
		{"RS384", forge(`{"alg":"RS384","kid":"r1"}`, good, rs256(rsaKey())), errAlgorithm, nil},
		{"PS256", forge(`{"alg":"PS256","kid":"r1"}`, good, rs256(rsaKey())), errAlgorithm, nil},
		{"ES384", forge(`{"alg":"ES384","kid":"e1"}`, good, es256(ecKey())), errAlgorithm, nil},
		// Algorithm confusion: HS256 never uses a JWKS key, so these fail against JWT_SECRET, or
		// are refused outright when there is none.
		{"HS256 keyed with the RSA public key as PEM", forge(`{"alg":"HS256","kid":"r1"}`, good, hs256(rsaPEM)), errSignature, errAlgorithm},
		{"HS256 keyed with the RSA public key as PKIX DER", forge(`{"alg":"HS256","kid":"r1"}`, good, hs256(rsaPub)), errSignature, errAlgorithm},
		{"HS256 keyed with the RSA public key as PKCS1 DER", forge(`{"alg":"HS256","kid":"r1"}`, good, hs256(rsaPKCS1)), errSignature, errAlgorithm},
		{"HS256 keyed with the RSA JWK", forge(`{"alg":"HS256","kid":"r1"}`, good, hs256(rsaJSON)), errSignature, errAlgorithm},
		{"HS256 keyed with the JWKS oct key", forge(`{"alg":"HS256","kid":"o1"}`, good, hs256([]byte(octSecret))), errSignature, errAlgorithm},
		{"unknown kid", jwxSign(t, jwa.RS256(), rsaKey(), "r9", good), errUnknownKey, nil},
		{"oct kid used for RS256", forge(`{"alg":"RS256","kid":"o1"}`, good, rs256(rsaKey())), errUnknownKey, nil},
		{"no kid, several keys", jwxSign(t, jwa.RS256(), rsaKey(), "", good), errUnknownKey, nil},
		{"kid not a string", forge(`{"alg":"RS256","kid":1}`, good, rs256(rsaKey())), errMalformed, nil},
		{"RS256 by another key", jwxSign(t, jwa.RS256(), rsaStranger(), "r1", good), errSignature, nil},
		{"ES256 by another key", jwxSign(t, jwa.ES256(), ecKey2(), "e1", good), errSignature, nil},
		{"ES256 signature in ASN.1", forge(`{"alg":"ES256","kid":"e1"}`, good, func(in []byte) []byte {
			d := sha256.Sum256(in)
			sig, _ := ecdsa.SignASN1(rand.Reader, ecKey(), d[:])
			return sig
		}), errSignature, nil},
		{"RS256 payload tampered", func() string {
			tok := jwxSign(t, jwa.RS256(), rsaKey(), "r1", good)
			return swapPayload(tok, claimsAt(now, map[string]any{"sub": "2"}))
		}(), errSignature, nil},
		{"RS256 expired", jwxSign(t, jwa.RS256(), rsaKey(), "r1", claimsAt(now, map[string]any{"exp": now.Add(-time.Minute).Unix()})), errExpired, nil},
		{"ES256 string exp", jwxSign(t, jwa.ES256(), ecKey(), "e1", claimsAt(now, map[string]any{"exp": fmt.Sprint(now.Add(time.Hour).Unix())})), errClaims, nil},
	}
	// Signed with JWT_SECRET, a token naming the oct key's kid is an ordinary HS256 token.
	sameSecret := forge(`{"alg":"HS256","kid":"o1"}`, good, hs256([]byte(testSecret)))

	t.Run("with a secret", func(t *testing.T) {
		k := p.verifier(t, clk, Config{Secret: testSecret})
		cases := append(append([]tokenCase{}, accepted...), refused...)
		cases = append(cases, tokenCase{"HS256 with JWT_SECRET and a JWKS kid", sameSecret, nil, nil})
		runTokenCases(t, k, cases)
	})
	t.Run("JWKS only", func(t *testing.T) {
		k := p.verifier(t, clk, Config{})
		cases := append([]tokenCase{}, accepted...)
		for _, tc := range refused {
			if tc.noSecretKind != nil {
				tc.kind = tc.noSecretKind
			}
			cases = append(cases, tc)
		}
		cases = append(cases, tokenCase{"HS256 with no secret configured", sameSecret, errAlgorithm, nil})
		runTokenCases(t, k, cases)
	})
}

// octSecret is the secret of an oct key that the test JWKS publishes (and that must never be
// used).
const octSecret = "jwks-oct-secret-0123456789"

type tokenCase struct {
	name         string
	token        string
	kind         error // nil: accepted as user 1
	noSecretKind error // kind without JWT_SECRET; nil: the same
}

func runTokenCases(t *testing.T, k *Keys, cases []tokenCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := k.Verify(context.Background(), tc.token)
			if tc.kind == nil {
				if err != nil || id.UserID != 1 {
					t.Fatalf("Verify = %+v, %v; want user 1", id, err)
				}
				return
			}
			wantRefused(t, err, tc.kind)
		})
	}
}

func swapPayload(tok, payload string) string {
	h, rest, _ := strings.Cut(tok, ".")
	_, sig, _ := strings.Cut(rest, ".")
	return h + "." + b64([]byte(payload)) + "." + sig
}

func TestJWKSSingleKeyWithoutKid(t *testing.T) {
	clk := newClock(time.Now())
	p := newIDP(t, ecJWK("", &ecKey().PublicKey, map[string]any{"kid": nil}))
	k := p.verifier(t, clk, Config{})
	good := claimsAt(clk.now(), nil)
	if id, err := k.Verify(context.Background(), jwxSign(t, jwa.ES256(), ecKey(), "", good)); err != nil || id.UserID != 1 {
		t.Fatalf("token without kid, JWKS of one key without kid: %+v, %v", id, err)
	}
	_, err := k.Verify(context.Background(), jwxSign(t, jwa.ES256(), ecKey(), "e1", good))
	wantRefused(t, err, errUnknownKey) // a kid must name a key
	_, err = k.Verify(context.Background(), forge(`{"alg":"RS256"}`, good, rs256(rsaKey())))
	wantRefused(t, err, errAlgorithm) // the one key is EC
}

func TestJWKSRotationAndRateLimit(t *testing.T) {
	clk := newClock(time.Now())
	p := newIDP(t, rsaJWK("k1", &rsaKey().PublicKey, nil))
	k := p.verifier(t, clk, Config{RefreshInterval: 10 * time.Second})
	verify := func(key *rsa.PrivateKey, kid string) error {
		_, err := k.Verify(context.Background(), jwxSign(t, jwa.RS256(), key, kid, claimsAt(clk.now(), nil)))
		return err
	}
	wantFetches := func(n int32) {
		t.Helper()
		if got := p.fetches.Load(); got != n {
			t.Fatalf("%d JWKS fetches, want %d", got, n)
		}
	}
	if err := verify(rsaKey(), "k1"); err != nil {
		t.Fatal(err)
	}
	wantFetches(1) // the one at start; known kids cost nothing

	// The provider rotates: k2 appears, k1 stays for tokens still in flight.
	p.serve(rsaJWK("k2", &rsaKey2().PublicKey, nil), rsaJWK("k1", &rsaKey().PublicKey, nil))
	clk.advance(10 * time.Second)
	if err := verify(rsaKey2(), "k2"); err != nil {
		t.Fatalf("new kid after rotation: %v", err)
	}
	wantFetches(2)
	if err := verify(rsaKey(), "k1"); err != nil {
		t.Fatalf("old kid still published: %v", err)
	}
	wantFetches(2)

	// A flood of made-up kids within the interval fetches nothing more and is refused.
	for i := range 50 {
		wantRefused(t, verify(rsaStranger(), fmt.Sprintf("random-%d", i)), errUnknownKey)
	}
	wantFetches(2)

	// k1 is withdrawn. Once the interval has passed, the next unknown kid fetches again, once.
	p.serve(rsaJWK("k2", &rsaKey2().PublicKey, nil))
	clk.advance(9 * time.Second)
	wantRefused(t, verify(rsaStranger(), "random-x"), errUnknownKey)
	wantFetches(2)
	clk.advance(time.Second)
	wantRefused(t, verify(rsaStranger(), "random-y"), errUnknownKey)
	wantFetches(3)
	wantRefused(t, verify(rsaKey(), "k1"), errUnknownKey)
	if err := verify(rsaKey2(), "k2"); err != nil {
		t.Fatal(err)
	}
	wantFetches(3)
}

func TestJWKSConcurrentUnknownKidsFetchOnce(t *testing.T) {
	clk := newClock(time.Now())
	p := newIDP(t, rsaJWK("k1", &rsaKey().PublicKey, nil))
	k := p.verifier(t, clk, Config{})
	p.serve(rsaJWK("k1", &rsaKey().PublicKey, nil), ecJWK("k2", &ecKey().PublicKey, nil))
	clk.advance(DefaultRefreshInterval)
	tok := jwxSign(t, jwa.ES256(), ecKey(), "k2", claimsAt(clk.now(), nil))
	errs := make(chan error, 20)
	for range cap(errs) {
		go func() {
			_, err := k.Verify(context.Background(), tok)
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := p.fetches.Load(); got != 2 {
		t.Fatalf("%d JWKS fetches, want 2 (start, then one for the new kid)", got)
	}
}

func TestJWKSUnavailableAtStart(t *testing.T) {
	clk := newClock(time.Now())
	p := newIDP(t, rsaJWK("k1", &rsaKey().PublicKey, nil))
	p.status.Store(http.StatusServiceUnavailable)
	k := p.verifier(t, clk, Config{}) // no error: the server starts without its keys
	tok := jwxSign(t, jwa.RS256(), rsaKey(), "k1", claimsAt(clk.now(), nil))
	_, err := k.Verify(context.Background(), tok)
	wantRefused(t, err, errUnknownKey)

	p.status.Store(0)
	clk.advance(DefaultRefreshInterval)
	if _, err := k.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after the JWKS came back: %v", err)
	}
	if got := p.fetches.Load(); got != 2 {
		t.Fatalf("%d JWKS fetches, want 2", got)
	}

	// A failed fetch later keeps the keys we have.
	p.status.Store(http.StatusInternalServerError)
	clk.advance(DefaultRefreshInterval)
	_, err = k.Verify(context.Background(), jwxSign(t, jwa.RS256(), rsaKey(), "k9", claimsAt(clk.now(), nil)))
	wantRefused(t, err, errUnknownKey)
	if _, err := k.Verify(context.Background(), tok); err != nil {
		t.Fatalf("known kid after a failed fetch: %v", err)
	}
}

func TestJWKSFetchTimeout(t *testing.T) {
	clk := newClock(time.Now())
	p := newIDP(t, rsaJWK("k1", &rsaKey().PublicKey, nil))
	p.hang.Store(true)
	// The initial fetch hangs until FetchTimeout; Verify waits for it and then refuses.
	k := p.verifier(t, clk, Config{FetchTimeout: 50 * time.Millisecond})
	_, err := k.Verify(context.Background(), jwxSign(t, jwa.RS256(), rsaKey(), "k1", claimsAt(clk.now(), nil)))
	wantRefused(t, err, errUnknownKey)

	// A caller's context ends its own wait for a fetch.
	k2, err := newKeys(Config{JWKSURL: p.srv.URL, HTTPClient: p.srv.Client(), FetchTimeout: time.Minute}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = k2.Verify(ctx, jwxSign(t, jwa.RS256(), rsaKey(), "k1", claimsAt(clk.now(), nil)))
	wantRefused(t, err, errUnknownKey)
	close(p.release) // the fetch gets an empty answer, fails, and ends
	settle(k2)
}

func TestJWKSStaleSetRefreshed(t *testing.T) {
	clk := newClock(time.Now())
	p := newIDP(t, rsaJWK("k1", &rsaKey().PublicKey, nil), rsaJWK("k2", &rsaKey2().PublicKey, nil))
	k := p.verifier(t, clk, Config{MaxKeyAge: time.Hour})
	verify := func(key *rsa.PrivateKey, kid string) error {
		_, err := k.Verify(context.Background(), jwxSign(t, jwa.RS256(), key, kid, claimsAt(clk.now(), nil)))
		return err
	}
	// k1 is withdrawn. Within MaxKeyAge the cached set still has it.
	p.serve(rsaJWK("k2", &rsaKey2().PublicKey, nil))
	clk.advance(59 * time.Minute)
	if err := verify(rsaKey(), "k1"); err != nil {
		t.Fatal(err)
	}
	if got := p.fetches.Load(); got != 1 {
		t.Fatalf("%d fetches, want 1", got)
	}
	// Past it, a token is checked against the cached set while the set is fetched again.
	clk.advance(time.Minute)
	if err := verify(rsaKey(), "k1"); err != nil {
		t.Fatal(err)
	}
	settle(k)
	if got := p.fetches.Load(); got != 2 {
		t.Fatalf("%d fetches, want 2", got)
	}
	wantRefused(t, verify(rsaKey(), "k1"), errUnknownKey)
	if err := verify(rsaKey2(), "k2"); err != nil {
		t.Fatal(err)
	}
}

func TestJWKSUnusableKeysSkipped(t *testing.T) {
	clk := newClock(time.Now())
	small := mustRSA(1024)
	p384 := mustEC(elliptic.P384())
	p := newIDP(t,
		rsaJWK("small", &small.PublicKey, nil),
		ecJWK("p384", &p384.PublicKey, nil),
		rsaJWK("enc", &rsaKey2().PublicKey, map[string]any{"use": "enc"}),
		rsaJWK("wrap", &rsaKey2().PublicKey, map[string]any{"key_ops": []string{"wrapKey"}}),
		rsaJWK("ps256", &rsaKey2().PublicKey, map[string]any{"alg": "PS256"}),
		ecJWK("ec-rs", &ecKey2().PublicKey, map[string]any{"alg": "RS256"}),
		map[string]any{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(make([]byte, 32))},
		map[string]any{"kty": "PQ", "kid": "future", "pub": "AAAA"},
		rsaJWK("good", &rsaKey().PublicKey, map[string]any{"use": "sig", "key_ops": []string{"verify"}, "alg": "RS256"}),
		rsaJWK("good", &rsaKey2().PublicKey, nil), // a second key with a kid already taken
	)
	k := p.verifier(t, clk, Config{})
	good := claimsAt(clk.now(), nil)
	if _, err := k.Verify(context.Background(), jwxSign(t, jwa.RS256(), rsaKey(), "good", good)); err != nil {
		t.Fatalf("the usable key of the set: %v", err)
	}
	if n := k.jwks.set.Load().len(); n != 1 {
		t.Fatalf("%d usable keys, want 1", n)
	}
	for _, tc := range []struct {
		kid string
		tok string
	}{
		{"small", forge(`{"alg":"RS256","kid":"small"}`, good, rs256(small))},
		{"p384", forge(`{"alg":"ES256","kid":"p384"}`, good, es256(p384))},
		{"enc", jwxSign(t, jwa.RS256(), rsaKey2(), "enc", good)},
		{"wrap", jwxSign(t, jwa.RS256(), rsaKey2(), "wrap", good)},
		{"ps256", jwxSign(t, jwa.RS256(), rsaKey2(), "ps256", good)},
		{"ec-rs", jwxSign(t, jwa.ES256(), ecKey2(), "ec-rs", good)},
		{"good by the duplicate's key", jwxSign(t, jwa.RS256(), rsaKey2(), "good", good)},
	} {
		t.Run(tc.kid, func(t *testing.T) {
			_, err := k.Verify(context.Background(), tc.tok)
			if tc.kid == "good by the duplicate's key" {
				wantRefused(t, err, errSignature)
				return
			}
			wantRefused(t, err, errUnknownKey)
		})
	}
}

// The JWKS parser accepts what jwx produces too, private members included (only the public
// part is used).
func TestJWKSFromJWX(t *testing.T) {
	clk := newClock(time.Now())
	key, err := jwk.Import(rsaKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Set(jwk.KeyIDKey, "priv"); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(key)
	var entry map[string]any
	if err := json.Unmarshal(raw, &entry); err != nil {
		t.Fatal(err)
	}
	p := newIDP(t, entry)
	k := p.verifier(t, clk, Config{})
	if _, err := k.Verify(context.Background(), jwxSign(t, jwa.RS256(), rsaKey(), "priv", claimsAt(clk.now(), nil))); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkVerify(b *testing.B) {
	clk := newClock(time.Now())
	p := &idp{release: make(chan struct{})}
	p.serve(rsaJWK("r1", &rsaKey().PublicKey, nil), ecJWK("e1", &ecKey().PublicKey, nil))
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(*p.body.Load()) }))
	defer p.srv.Close()
	k, err := newKeys(Config{Secret: testSecret, JWKSURL: p.srv.URL, HTTPClient: p.srv.Client()}, clk.now)
	if err != nil {
		b.Fatal(err)
	}
	settle(k)
	good := claimsAt(clk.now(), nil)
	hs, _ := k.Sign(1, time.Hour)
	for _, bc := range []struct{ name, token string }{
		{"HS256", hs},
		{"RS256", jwxSign(b, jwa.RS256(), rsaKey(), "r1", good)},
		{"ES256", jwxSign(b, jwa.ES256(), ecKey(), "e1", good)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Verify(context.Background(), bc.token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
