// Package auth verifies and issues the JWTs that identify a viewer, and carries the viewer in a
// request's context.
//
// # What is accepted
//
// A token is a compact JWS whose protected header names one of three algorithms, each tied to
// one source of keys:
//
//   - HS256 with JWT_SECRET (Config.Secret), when a secret is configured. Sign issues these
//     (development tokens, `threadline token`).
//   - RS256 and ES256 (P-256) with a public key from the JWKS at JWT_JWKS_URL
//     (Config.JWKSURL), when one is configured: the keys of a production identity provider.
//
// Anything else is refused: `alg: none` in any spelling, other algorithms, a `crit` or `b64`
// header. The key is chosen from the header's alg and kid and must suit the alg: HS256 only
// ever uses the secret, never a JWKS key (so a public key's bytes can never serve as an HMAC
// secret, the classic algorithm confusion), RS256 only an RSA key of at least 2048 bits, ES256
// only a P-256 key; a JWKS key that declares its own alg must declare that one. jwx then
// verifies the signature under that alg and refuses a header whose alg differs.
//
// # Keys from the JWKS
//
// The key set is cached. It is fetched when New is called, in the background, and again when a
// token names a kid the cached set lacks, or when the set is older than Config.MaxKeyAge (15
// minutes by default, so that a key the provider withdraws stops being accepted; the token is
// then verified with the cached set while the fetch runs). Fetches never overlap, each is
// bounded by Config.FetchTimeout (5 s), and one starts at most once per
// Config.RefreshInterval (5 s): a flood of tokens with made-up kids costs the provider at most
// one request per 5 s, and those tokens are refused without waiting. A token whose kid is
// unknown waits for the fetch it caused (or joins the one running) and is then verified or
// refused.
//
// A JWKS that cannot be fetched (at start or later) fails nothing but the tokens that need it:
// the failure is logged, the previous set stays in use, and the next token that needs a key
// tries again, within the same rate limit. Keys the provider publishes that we cannot use
// (encryption keys, other types, curves or algorithms, short RSA keys) are logged and skipped.
//
// A token without kid is verified with the only key of the set when the set has exactly one;
// when it has several the token is refused rather than tried against each.
//
// # Claims
//
// Every token, whatever its algorithm, must carry `exp`; `exp`, `nbf` and `iat`, when present,
// are JSON numbers (a string such as "1700000000" is refused). With Leeway (5 s) for clock skew,
// a token is refused once `exp` has passed, before `nbf`, and when `iat` lies in the future.
// `sub` is the user id in canonical decimal form: a positive int64 with no sign, no leading
// zero, no space ("1" is user 1; "+1", "01", " 1", "1.0", "0" and "-1" are refused). When an
// issuer (JWT_ISSUER) is configured `iss` must equal it, and when an audience (JWT_AUDIENCE) is
// configured `aud`, a string or an array of strings, must contain it; Sign writes both so that
// its tokens pass. A payload that names a claim twice is refused.
//
// # Errors
//
// Verify says why a token was refused, for the log (Authenticate logs it at debug level). The
// errors wrap apperr.ErrUnauthenticated, so a client that is shown one sees only
// UNAUTHENTICATED, never the reason.
//
// # The viewer
//
// Authentication is per field, not per request: a request with no token, or with a bad one,
// still reaches the GraphQL executor (so `{ __typename }` works), and each field that touches
// user data asks Viewer, which then reports UNAUTHENTICATED. The context carries the user id
// and the token's expiry: Expiry lets long-lived transports (WebSocket, SSE) end a connection
// when its token expires, and Viewer itself stops answering for an identity whose token has
// expired (Leeway included), so an operation that starts on such a connection is refused even
// before the transport closes it.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/threadline/threadline/internal/apperr"
)

// MinSecretLen is the shortest JWT secret accepted, in bytes.
const MinSecretLen = 16

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 5 * time.Second

// MaxTokenBytes is the longest token read; longer ones are refused before any decoding.
const MaxTokenBytes = 16 << 10

// Defaults of the JWKS settings of Config.
const (
	DefaultFetchTimeout    = 5 * time.Second
	DefaultRefreshInterval = 5 * time.Second
	DefaultMaxKeyAge       = 15 * time.Minute
)

// Config selects the keys and the claims that tokens must have. At least one of Secret and
// JWKSURL is required.
type Config struct {
	// Secret verifies and signs HS256 tokens (at least MinSecretLen bytes). Empty: HS256
	// tokens are refused and Sign fails.
	Secret string
	// JWKSURL is where the identity provider publishes its RS256/ES256 public keys. It must be
	// https (http only for a loopback host). Empty: RS256 and ES256 tokens are refused.
	JWKSURL string
	// Issuer, when set, must equal every token's iss.
	Issuer string
	// Audience, when set, must be one of every token's aud.
	Audience string

	// HTTPClient fetches the JWKS. Nil: a client that follows redirects to https only.
	HTTPClient *http.Client
	// FetchTimeout bounds each JWKS fetch. Zero: DefaultFetchTimeout.
	FetchTimeout time.Duration
	// RefreshInterval is the least time between the starts of two JWKS fetches. Zero:
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	// MaxKeyAge is how long a fetched key set is used before it is fetched again. Zero:
	// DefaultMaxKeyAge.
	MaxKeyAge time.Duration

	// Log receives JWKS fetch failures and refused tokens. Nil: discarded.
	Log *slog.Logger
}

// Keys verifies tokens with the keys of a Config, and signs HS256 tokens with its secret.
type Keys struct {
	secret   []byte     // nil: HS256 refused
	jwks     *keySource // nil: RS256 and ES256 refused
	issuer   string     // "": iss not checked
	audience string     // "": aud not checked
	log      *slog.Logger
	now      func() time.Time
	verified verifiedCache
}

// Identity is who a verified token names, and until when.
type Identity struct {
	UserID  int64
	Expires time.Time // the token's exp
}

// New returns Keys for cfg. With a JWKS URL it starts fetching the key set in the background
// and returns without waiting: a JWKS that cannot be fetched is logged, and fetched again when
// a token needs it.
func New(cfg Config) (*Keys, error) {
	return newKeys(cfg, time.Now)
}

// NewKeys returns Keys that verify and sign HS256 tokens with secret only.
func NewKeys(secret string) (*Keys, error) {
	if secret == "" {
		return nil, fmt.Errorf("auth: JWT secret must be at least %d bytes", MinSecretLen)
	}
	return New(Config{Secret: secret})
}

func newKeys(cfg Config, now func() time.Time) (*Keys, error) {
	if cfg.Secret == "" && cfg.JWKSURL == "" {
		return nil, errors.New("auth: configure a JWT secret, a JWKS URL, or both")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &Keys{issuer: cfg.Issuer, audience: cfg.Audience, log: log, now: now}
	if cfg.Secret != "" {
		if len(cfg.Secret) < MinSecretLen {
			return nil, fmt.Errorf("auth: JWT secret must be at least %d bytes", MinSecretLen)
		}
		k.secret = []byte(cfg.Secret)
	}
	if cfg.JWKSURL != "" {
		src, err := newKeySource(cfg, log, now)
		if err != nil {
			return nil, err
		}
		k.jwks = src
		if cfg.Audience == "" {
			log.Warn("auth: JWT_AUDIENCE is unset: tokens the identity provider issued for any audience are accepted",
				slog.String("jwks_url", cfg.JWKSURL))
		}
		src.refresh()
	}
	return k, nil
}

// signedClaims are the claims Sign writes.
type signedClaims struct {
	Sub string `json:"sub"`
	Iss string `json:"iss,omitempty"`
	Aud string `json:"aud,omitempty"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// Sign returns an HS256 token for userID that expires after ttl (a negative ttl makes an
// expired token, for tests). It carries the configured issuer and audience, so that Verify
// accepts it. Sign fails without a secret.
func (k *Keys) Sign(userID int64, ttl time.Duration) (string, error) {
	if k.secret == nil {
		return "", errors.New("auth: signing needs a JWT secret")
	}
	if userID < 1 {
		return "", fmt.Errorf("auth: user id %d is not positive", userID)
	}
	now := k.now()
	payload, err := json.Marshal(signedClaims{
		Sub: strconv.FormatInt(userID, 10), Iss: k.issuer, Aud: k.audience,
		Iat: now.Unix(), Exp: now.Add(ttl).Unix(),
	})
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), k.secret, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return string(tok), nil
}

// Verify returns the identity a token names, or why it is refused. ctx bounds the wait for a
// JWKS fetch that the token's kid causes.
func (k *Keys) Verify(ctx context.Context, token string) (Identity, error) {
	if len(token) > MaxTokenBytes {
		return Identity{}, refuse(errMalformed, "token is %d bytes, more than %d", len(token), MaxTokenBytes)
	}
	now := k.now()
	if id, ok := k.verified.get(token, now, k.currentSet()); ok {
		return id, nil
	}
	h, err := parseHeader(token)
	if err != nil {
		return Identity{}, err
	}
	set := k.currentSet() // before the key is chosen: a set fetched meanwhile forgets the token
	alg, key, err := k.keyFor(ctx, h)
	if err != nil {
		return Identity{}, err
	}
	payload, err := jws.Verify([]byte(token), jws.WithCompact(), jws.WithKey(alg, key), jws.WithAlgorithmMatch(true))
	if err != nil {
		return Identity{}, refuse(errSignature, "%s signature (kid %q) does not verify: %v", h.alg, h.kid, err)
	}
	c, err := parseClaims(payload)
	if err != nil {
		return Identity{}, err
	}
	if err := c.check(now, k.issuer, k.audience); err != nil {
		return Identity{}, err
	}
	id := Identity{UserID: c.sub, Expires: c.exp}
	v := verifiedToken{id: id, nbf: c.nbf, iat: c.iat, verifiedAt: now}
	if h.alg != "HS256" {
		v.set = set
	}
	k.verified.put(token, v)
	return id, nil
}

// currentSet returns the JWKS key set in use (nil without a JWKS, or before it was fetched).
func (k *Keys) currentSet() *keySet {
	if k.jwks == nil {
		return nil
	}
	return k.jwks.set.Load()
}

// keyFor returns the algorithm and key that verify a token with header h. The algorithm is
// the header's; the key comes from the one source tied to it, and must be of its type.
func (k *Keys) keyFor(ctx context.Context, h header) (jwa.SignatureAlgorithm, any, error) {
	switch h.alg {
	case "HS256":
		if k.secret == nil {
			return jwa.SignatureAlgorithm{}, nil, refuse(errAlgorithm, "HS256 token, but no JWT secret is configured")
		}
		return jwa.HS256(), k.secret, nil
	case "RS256", "ES256":
		if k.jwks == nil {
			return jwa.SignatureAlgorithm{}, nil, refuse(errAlgorithm, "%s token, but no JWKS URL is configured", h.alg)
		}
		pk, err := k.jwks.key(ctx, h.kid)
		if err != nil {
			return jwa.SignatureAlgorithm{}, nil, err
		}
		if pk.alg.String() != h.alg {
			return jwa.SignatureAlgorithm{}, nil, refuse(errAlgorithm, "%s token, but key %q is an %s key", h.alg, pk.kid, pk.alg)
		}
		return pk.alg, pk.key, nil
	default:
		return jwa.SignatureAlgorithm{}, nil, refuse(errAlgorithm, "alg %q is not accepted (HS256, RS256 and ES256 are)", h.alg)
	}
}

// VerifyHeader returns the user id named by an Authorization header value of the form
// "Bearer <token>". A JWKS fetch it causes is bounded by the fetch timeout.
func (k *Keys) VerifyHeader(header string) (int64, error) {
	id, err := k.verifyHeader(context.Background(), header)
	return id.UserID, err
}

func (k *Keys) verifyHeader(ctx context.Context, header string) (Identity, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Identity{}, refuse(errMalformed, "authorization is not a bearer token")
	}
	return k.Verify(ctx, strings.TrimSpace(token))
}

type viewerKey struct{}

// viewer is what the context carries: a zero id is no viewer, a zero exp no expiry.
type viewer struct {
	id  int64
	exp time.Time
}

// WithViewer returns ctx carrying the viewer userID, with no expiry.
func WithViewer(ctx context.Context, userID int64) context.Context {
	return context.WithValue(ctx, viewerKey{}, viewer{id: userID})
}

// Viewer returns the viewer's user id, or UNAUTHENTICATED when the request has none or the
// viewer's token has expired (Leeway included).
func Viewer(ctx context.Context) (int64, error) {
	v, _ := ctx.Value(viewerKey{}).(viewer)
	if v.id == 0 || (!v.exp.IsZero() && !time.Now().Before(v.exp.Add(Leeway))) {
		return 0, apperr.ErrUnauthenticated
	}
	return v.id, nil
}

// Expiry returns when the viewer's token expires (its exp claim), and false when ctx has no
// viewer or the viewer has no expiry (WithViewer).
func Expiry(ctx context.Context) (time.Time, bool) {
	v, _ := ctx.Value(viewerKey{}).(viewer)
	return v.exp, v.id != 0 && !v.exp.IsZero()
}

// Authenticate returns ctx with the viewer named by an Authorization header value. An empty
// header leaves ctx as it is; a bad one makes it anonymous, even if it had a viewer, and the
// reason is logged at debug level.
func (k *Keys) Authenticate(ctx context.Context, header string) context.Context {
	if header == "" {
		return ctx
	}
	id, err := k.verifyHeader(ctx, header)
	if err != nil {
		k.log.DebugContext(ctx, "auth: token refused", slog.String("reason", err.Error()))
		return context.WithValue(ctx, viewerKey{}, viewer{})
	}
	return context.WithValue(ctx, viewerKey{}, viewer{id: id.UserID, exp: id.Expires})
}

// Middleware authenticates each request from its Authorization header.
func (k *Keys) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("Authorization"); h != "" {
			r = r.WithContext(k.Authenticate(r.Context(), h))
		}
		next.ServeHTTP(w, r)
	})
}

// The kinds of refusal, for tests and errors.Is; the log gets the detail.
var (
	errMalformed   = errors.New("malformed token")
	errAlgorithm   = errors.New("algorithm refused")
	errUnknownKey  = errors.New("no key for token")
	errSignature   = errors.New("bad signature")
	errClaims      = errors.New("bad claims")
	errExpired     = errors.New("token expired")
	errNotYetValid = errors.New("token not yet valid")
)

// refusal is why a token was refused. It unwraps to its kind and to
// apperr.ErrUnauthenticated, all that a client may learn of it.
type refusal struct {
	kind   error
	detail string
}

func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, detail: fmt.Sprintf(format, args...)}
}

func (r *refusal) Error() string   { return "auth: " + r.kind.Error() + ": " + r.detail }
func (r *refusal) Unwrap() []error { return []error{r.kind, apperr.ErrUnauthenticated} }
