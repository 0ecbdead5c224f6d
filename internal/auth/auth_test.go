package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/apperr"
)

const testSecret = "0123456789abcdef0123"

// clock is a settable clock for Keys (newKeys); tests move it instead of sleeping.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// Test keys, generated once per test binary.
var (
	rsaKey      = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaKey2     = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaStranger = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	ecKey       = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	ecKey2      = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// signer signs a JWS signing input (header.payload) as one algorithm does.
type signer func(input []byte) []byte

func hs256(secret []byte) signer {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

func rs256(k *rsa.PrivateKey) signer {
	return func(in []byte) []byte {
		d := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

func es256(k *ecdsa.PrivateKey) signer {
	return func(in []byte) []byte {
		d := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			panic(err)
		}
		n := (k.Curve.Params().BitSize + 7) / 8 // JWS: r and s as big-endian integers of the curve's size
		sig := make([]byte, 2*n)
		r.FillBytes(sig[:n])
		s.FillBytes(sig[n:])
		return sig
	}
}

func unsigned(in []byte) []byte { return nil }

// forge builds a compact JWS from a raw header and payload, byte for byte as given, so that
// tests can write what no well-behaved library would.
func forge(hdr, payload string, sign signer) string {
	enc := base64.RawURLEncoding.EncodeToString
	input := enc([]byte(hdr)) + "." + enc([]byte(payload))
	return input + "." + enc(sign([]byte(input)))
}

// claimsAt returns a valid payload for user 1 at now, with extra members merged in (a nil
// value removes the member).
func claimsAt(now time.Time, extra map[string]any) string {
	m := map[string]any{"sub": "1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// wantRefused fails unless err is a refusal of the given kind, and one that a client can only
// see as UNAUTHENTICATED.
func wantRefused(t *testing.T, err, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want refused (%v)", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("refused with %v, want %v", err, kind)
	}
	if pub := apperr.Public(err); pub == nil || pub.Code != apperr.Unauthenticated || pub.Message != apperr.ErrUnauthenticated.Message {
		t.Fatalf("public error %v, want %v", pub, apperr.ErrUnauthenticated)
	}
	if !strings.HasPrefix(err.Error(), "auth: ") {
		t.Errorf("error %q does not say where it comes from", err)
	}
}

func TestSignAndVerify(t *testing.T) {
	clk := newClock(time.Now())
	k, err := newKeys(Config{Secret: testSecret}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Sign(7, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{UserID: 7, Expires: time.Unix(clk.now().Add(time.Minute).Unix(), 0)}
	got, err := k.Verify(context.Background(), tok)
	if err != nil || got != want {
		t.Fatalf("Verify = %+v, %v; want %+v", got, err, want)
	}
	if id, err := k.VerifyHeader("Bearer " + tok); err != nil || id != 7 {
		t.Fatalf("VerifyHeader = %d, %v", id, err)
	}
	if id, err := k.VerifyHeader("bearer  " + tok); err != nil || id != 7 {
		t.Fatalf("case-insensitive scheme: %d, %v", id, err)
	}
	ctx := k.Authenticate(context.Background(), "Bearer "+tok)
	if id, err := Viewer(ctx); err != nil || id != 7 {
		t.Fatalf("Viewer = %d, %v", id, err)
	}
	if exp, ok := Expiry(ctx); !ok || !exp.Equal(want.Expires) {
		t.Fatalf("Expiry = %v, %v; want %v", exp, ok, want.Expires)
	}
}

func TestSignCarriesIssuerAndAudience(t *testing.T) {
	k, err := New(Config{Secret: testSecret, Issuer: "https://idp.example", Audience: "threadline"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Sign(3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := k.Verify(context.Background(), tok); err != nil || id.UserID != 3 {
		t.Fatalf("Verify = %+v, %v", id, err)
	}
	other, _ := New(Config{Secret: testSecret, Audience: "another-service"})
	_, err = other.Verify(context.Background(), tok)
	wantRefused(t, err, errClaims)
}

func TestHS256Refused(t *testing.T) {
	clk := newClock(time.Now())
	k, _ := newKeys(Config{Secret: testSecret}, clk.now)
	other, _ := NewKeys("another-secret-0123456789")
	wrongKey, _ := other.Sign(7, time.Minute)
	expired, _ := k.Sign(7, -time.Minute)
	good := claimsAt(clk.now(), nil)
	for _, tc := range []struct {
		name, header string
		kind         error
	}{
		{"wrong key", "Bearer " + wrongKey, errSignature},
		{"expired", "Bearer " + expired, errExpired},
		{"HS384", "Bearer " + forge(`{"alg":"HS384","typ":"JWT"}`, good, hs256([]byte(testSecret))), errAlgorithm},
		{"none", "Bearer " + forge(`{"alg":"none","typ":"JWT"}`, good, unsigned), errAlgorithm},
		{"RS256 without a JWKS", "Bearer " + forge(`{"alg":"RS256","kid":"r1"}`, good, rs256(rsaKey())), errAlgorithm},
		{"tampered payload", "Bearer " + func() string {
			tok, _ := k.Sign(7, time.Minute)
			parts := strings.Split(tok, ".")
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte(claimsAt(clk.now(), map[string]any{"sub": "8"})))
			return strings.Join(parts, ".")
		}(), errSignature},
		{"no scheme", wrongKey, errMalformed},
		{"basic", "Basic YWxpY2U6cGFzcw==", errMalformed},
		{"empty bearer", "Bearer ", errMalformed},
		{"two parts", "Bearer a.b", errMalformed},
		{"four parts", "Bearer a.b.c.d", errMalformed},
		{"header not base64", "Bearer !!.e30.", errMalformed},
		{"header not an object", "Bearer " + forge(`["HS256"]`, good, hs256([]byte(testSecret))), errMalformed},
		{"alg not a string", "Bearer " + forge(`{"alg":1}`, good, hs256([]byte(testSecret))), errMalformed},
		{"no alg", "Bearer " + forge(`{"typ":"JWT"}`, good, hs256([]byte(testSecret))), errAlgorithm},
		{"alg twice", "Bearer " + forge(`{"alg":"HS256","alg":"none"}`, good, hs256([]byte(testSecret))), errMalformed},
		{"crit", "Bearer " + forge(`{"alg":"HS256","crit":["exp"],"exp":1}`, good, hs256([]byte(testSecret))), errMalformed},
		{"b64 false", "Bearer " + forge(`{"alg":"HS256","b64":false}`, good, hs256([]byte(testSecret))), errMalformed},
		{"too long", "Bearer " + forge(`{"alg":"HS256"}`, claimsAt(clk.now(), map[string]any{"pad": strings.Repeat("x", MaxTokenBytes)}), hs256([]byte(testSecret))), errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := k.verifyHeader(context.Background(), tc.header)
			if err == nil {
				t.Fatalf("accepted as %+v", id)
			}
			wantRefused(t, err, tc.kind)
			ctx := k.Authenticate(WithViewer(context.Background(), 99), tc.header)
			if _, err := Viewer(ctx); codeOf(err) != apperr.Unauthenticated {
				t.Errorf("Viewer after a refused token: %v, want UNAUTHENTICATED (the earlier viewer dropped)", err)
			}
		})
	}
}

func TestForgedHS256Accepted(t *testing.T) {
	// The forging helpers make tokens that verify: the refusals above are not their fault.
	clk := newClock(time.Now())
	k, _ := newKeys(Config{Secret: testSecret}, clk.now)
	tok := forge(`{"alg":"HS256","typ":"JWT"}`, claimsAt(clk.now(), nil), hs256([]byte(testSecret)))
	if id, err := k.Verify(context.Background(), tok); err != nil || id.UserID != 1 {
		t.Fatalf("Verify = %+v, %v", id, err)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"nothing", Config{}},
		{"short secret", Config{Secret: "short"}},
		{"short secret with a JWKS", Config{Secret: "short", JWKSURL: "https://idp.example/jwks"}},
		{"http JWKS", Config{JWKSURL: "http://idp.example/jwks"}},
		{"relative JWKS", Config{JWKSURL: "/jwks"}},
		{"ftp JWKS", Config{JWKSURL: "ftp://idp.example/jwks"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := NewKeys(""); err == nil {
		t.Error("NewKeys accepted an empty secret")
	}
	for _, u := range []string{"https://idp.example/jwks", "http://127.0.0.1:1/jwks", "http://[::1]:1/jwks", "http://localhost:1/jwks"} {
		if err := checkJWKSURL(u); err != nil {
			t.Errorf("checkJWKSURL(%q) = %v, want nil", u, err)
		}
	}
}

func TestSignNeedsSecret(t *testing.T) {
	k, err := New(Config{JWKSURL: "http://127.0.0.1:1/jwks", FetchTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := k.Sign(1, time.Minute); err == nil {
		t.Fatalf("signed %q without a secret", tok)
	}
	// With a JWKS only, an HS256 token is refused whatever it was signed with.
	tok := forge(`{"alg":"HS256"}`, claimsAt(time.Now(), nil), hs256(nil))
	_, err = k.Verify(context.Background(), tok)
	wantRefused(t, err, errAlgorithm)
}

func TestViewerContext(t *testing.T) {
	ctx := context.Background()
	if _, err := Viewer(ctx); codeOf(err) != apperr.Unauthenticated {
		t.Fatalf("anonymous Viewer: %v", err)
	}
	if _, ok := Expiry(ctx); ok {
		t.Fatal("anonymous context has an expiry")
	}
	ctx = WithViewer(ctx, 5)
	if id, err := Viewer(ctx); err != nil || id != 5 {
		t.Fatalf("Viewer = %d, %v", id, err)
	}
	if _, ok := Expiry(ctx); ok {
		t.Fatal("WithViewer has an expiry")
	}
	if got := (&Keys{}).Authenticate(ctx, ""); got != ctx {
		t.Fatal("an empty header changed the context")
	}

	// A token verified by a clock an hour behind is valid for Verify but expired for Viewer,
	// which reads the real clock: an identity stops counting when its token expires.
	clk := newClock(time.Now().Add(-time.Hour))
	k, _ := newKeys(Config{Secret: testSecret}, clk.now)
	tok, _ := k.Sign(6, time.Minute)
	ctx = k.Authenticate(context.Background(), "Bearer "+tok)
	if _, err := Viewer(ctx); codeOf(err) != apperr.Unauthenticated {
		t.Fatalf("Viewer with an expired token: %v, want UNAUTHENTICATED", err)
	}
	if exp, ok := Expiry(ctx); !ok || exp.Unix() != clk.now().Add(time.Minute).Unix() {
		t.Fatalf("Expiry = %v, %v", exp, ok)
	}
}

func TestMiddleware(t *testing.T) {
	k, _ := NewKeys(testSecret)
	tok, _ := k.Sign(9, time.Minute)
	var got []string
	h := k.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := Viewer(r.Context())
		_, hasExp := Expiry(r.Context())
		got = append(got, fmt.Sprintf("%d %v %v", id, err == nil, hasExp))
	}))
	for _, authz := range []string{"", "Bearer " + tok, "Bearer nope"} {
		r := httptest.NewRequest(http.MethodPost, "/query", nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	want := []string{"0 false false", "9 true true", "0 false false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("viewers seen:\n-%q\n+%q", want, got)
	}
}

// codeOf is err's public code ("" when err is not public).
func codeOf(err error) apperr.Code {
	if pub := apperr.Public(err); pub != nil {
		return pub.Code
	}
	return ""
}
