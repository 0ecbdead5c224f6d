package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/threadline/threadline/internal/defaults"
)

// maxJWKSBytes bounds a JWKS response; identity providers publish a few keys, a few KB.
const maxJWKSBytes = 1 << 20

// minRSABits is the smallest RSA modulus accepted for RS256.
const minRSABits = 2048

// publicKey is a JWKS key we can verify with: an RSA key for RS256 or a P-256 key for ES256.
type publicKey struct {
	kid string
	alg jwa.SignatureAlgorithm // RS256 or ES256: the only alg this key verifies
	key any                    // *rsa.PublicKey or *ecdsa.PublicKey
}

// keySet is one fetched JWKS, reduced to the keys we can use. It is never modified.
type keySet struct {
	fetched time.Time
	byKID   map[string]*publicKey
	keys    []*publicKey // all of them, those without kid included
}

// keySource caches the key set of a JWKS URL and fetches it again when needed, one fetch at
// a time and at most one start per interval (see the package doc).
type keySource struct {
	url      string
	client   *http.Client
	timeout  time.Duration
	interval time.Duration
	maxAge   time.Duration
	log      *slog.Logger
	now      func() time.Time

	set atomic.Pointer[keySet] // nil until a fetch succeeds

	mu        sync.Mutex
	running   chan struct{} // closed when the running fetch ends; nil when none runs
	lastStart time.Time     // when the last fetch started; zero: never
}

func newKeySource(cfg Config, log *slog.Logger, now func() time.Time) (*keySource, error) {
	if err := checkJWKSURL(cfg.JWKSURL); err != nil {
		return nil, err
	}
	s := &keySource{
		url: cfg.JWKSURL, client: cfg.HTTPClient, log: log, now: now,
		timeout: cfg.FetchTimeout, interval: cfg.RefreshInterval, maxAge: cfg.MaxKeyAge,
	}
	s.timeout = defaults.Positive(s.timeout, DefaultFetchTimeout)
	s.interval = defaults.Positive(s.interval, DefaultRefreshInterval)
	s.maxAge = defaults.Positive(s.maxAge, DefaultMaxKeyAge)
	if s.client == nil {
		s.client = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if err := checkJWKSURL(req.URL.String()); err != nil {
				return fmt.Errorf("redirected: %w", err)
			}
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			return nil
		}}
	}
	return s, nil
}

// checkJWKSURL accepts an absolute https URL, or http to a loopback host: keys fetched over
// plain http from elsewhere could be replaced by anyone on the path.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("auth: JWKS URL %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("auth: JWKS URL %q must be https (http only for a loopback host)", raw)
}

// key returns the key for a token's kid ("" when the token has none). A kid missing from the
// cached set, or no set yet, causes a fetch (or joins the running one) and a second look; a
// stale set causes a fetch in the background and is used meanwhile.
func (s *keySource) key(ctx context.Context, kid string) (*publicKey, error) {
	set := s.set.Load()
	if set != nil && s.now().Sub(set.fetched) >= s.maxAge {
		s.refresh()
	}
	pk, why, fetch := set.lookup(kid)
	if pk != nil || !fetch {
		return pk, refuseKey(why)
	}
	done := s.refresh()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, refuse(errUnknownKey, "%s; gave up waiting for the JWKS: %v", why, ctx.Err())
		}
	}
	// A second look even without a fetch of our own: one may have ended since the first.
	if pk, why, _ = s.set.Load().lookup(kid); pk == nil && done == nil {
		why += fmt.Sprintf("; the last JWKS fetch started less than %s ago", s.interval)
	}
	return pk, refuseKey(why)
}

func refuseKey(why string) error {
	if why == "" {
		return nil
	}
	return refuse(errUnknownKey, "%s", why)
}

// lookup finds the key for kid in set (which may be nil), or says why there is none; fetch
// reports that a fresh set might have it.
func (set *keySet) lookup(kid string) (pk *publicKey, why string, fetch bool) {
	switch {
	case set == nil:
		return nil, "no JWKS has been fetched", true
	case kid != "":
		if pk := set.byKID[kid]; pk != nil {
			return pk, "", false
		}
		return nil, fmt.Sprintf("kid %.100q is not in the JWKS", kid), true
	case len(set.keys) == 1:
		return set.keys[0], "", false
	case len(set.keys) == 0:
		return nil, "the JWKS has no usable key", true
	default:
		return nil, fmt.Sprintf("token has no kid and the JWKS has %d keys", len(set.keys)), false
	}
}

// refresh starts a fetch and returns a channel closed when it ends. If a fetch is running it
// returns that one's channel; if the last one started less than the interval ago, nil.
func (s *keySource) refresh() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		return s.running
	}
	now := s.now()
	if !s.lastStart.IsZero() && now.Sub(s.lastStart) < s.interval {
		return nil
	}
	s.lastStart = now
	done := make(chan struct{})
	s.running = done
	go func() {
		defer close(done)
		s.store(s.fetch())
		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
	}()
	return done
}

// store installs a fetched set, or logs why the fetch failed and keeps the previous one.
func (s *keySource) store(set *keySet, err error) {
	if err != nil {
		s.log.Warn("auth: JWKS fetch failed; keeping the previous keys", slog.String("jwks_url", s.url),
			slog.Int("keys", s.set.Load().len()), slog.String("err", err.Error()))
		return
	}
	old := s.set.Swap(set)
	if kids := set.kids(); old == nil || !slices.Equal(kids, old.kids()) {
		s.log.Info("auth: JWKS loaded", slog.String("jwks_url", s.url), slog.Any("kids", kids))
	}
	if len(set.keys) == 0 {
		s.log.Warn("auth: the JWKS has no usable key: RS256 and ES256 tokens are refused", slog.String("jwks_url", s.url))
	}
}

// fetch gets and parses the JWKS, within the timeout.
func (s *keySource) fetch() (*keySet, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	// Not strict: a key we cannot parse (a new key type) is kept as a placeholder and skipped
	// below, rather than failing the whole set.
	parsed, err := jwk.Parse(body, jwk.WithStrictKeySetParsing(false))
	if err != nil {
		return nil, err
	}
	set := &keySet{fetched: s.now(), byKID: make(map[string]*publicKey)}
	for i := range parsed.Len() {
		k, _ := parsed.Key(i)
		pk, err := usableKey(k)
		if err == nil && pk.kid != "" && set.byKID[pk.kid] != nil {
			err = errors.New("a previous key has the same kid")
		}
		if err != nil {
			kid, _ := k.KeyID()
			s.log.Warn("auth: JWKS key skipped", slog.String("jwks_url", s.url), slog.String("kid", kid), slog.String("reason", err.Error()))
			continue
		}
		if private, _ := jwk.IsPrivateKey(k); private {
			s.log.Warn("auth: the JWKS publishes private key material; only the public part is used",
				slog.String("jwks_url", s.url), slog.String("kid", pk.kid))
		}
		set.keys = append(set.keys, pk)
		if pk.kid != "" {
			set.byKID[pk.kid] = pk
		}
	}
	return set, nil
}

// usableKey returns k as a key for RS256 (RSA, at least minRSABits) or ES256 (EC P-256), or
// why it is not one: it is for encryption, of another type or curve, or declares another alg.
func usableKey(k jwk.Key) (*publicKey, error) {
	if u, ok := k.(jwk.UnsupportedKey); ok {
		return nil, fmt.Errorf("cannot parse key of type %q: %v", u.KeyType(), u.Reason())
	}
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return nil, fmt.Errorf("use is %q, not sig", use)
	}
	if ops, ok := k.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil, fmt.Errorf("key_ops %v lacks verify", ops)
	}
	raw, err := jwk.PublicRawKeyOf(k)
	if err != nil {
		return nil, err
	}
	pk := &publicKey{key: raw}
	pk.kid, _ = k.KeyID()
	switch pub := raw.(type) {
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, fewer than %d", n, minRSABits)
		}
		pk.alg = jwa.RS256()
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC key on %s, not P-256", pub.Curve.Params().Name)
		}
		pk.alg = jwa.ES256()
	default:
		return nil, fmt.Errorf("key type %q is neither RSA nor EC", k.KeyType())
	}
	if alg, ok := k.Algorithm(); ok && alg.String() != pk.alg.String() {
		return nil, fmt.Errorf("declares alg %q; an %s key is used for %s only", alg, k.KeyType(), pk.alg)
	}
	return pk, nil
}

func (set *keySet) len() int {
	if set == nil {
		return 0
	}
	return len(set.keys)
}

// kids lists the set's key ids, sorted, for the log.
func (set *keySet) kids() []string {
	kids := make([]string, 0, len(set.keys))
	for _, pk := range set.keys {
		kids = append(kids, pk.kid)
	}
	slices.Sort(kids)
	return kids
}
