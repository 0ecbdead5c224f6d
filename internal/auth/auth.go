// Package auth verifies and issues the JWTs that identify a viewer, and carries the viewer in a
// request's context.
//
// Tokens are HS256 JWTs signed with JWT_SECRET: `sub` is the user id as a decimal string, `exp`
// is required, `nbf` and `iat` are honoured when present. Any other algorithm, `alg: none`
// included, is refused.
//
// Authentication is per field, not per request: a request with no token, or with a bad one,
// still reaches the GraphQL executor (so `{ __typename }` works), and each field that touches
// user data asks Viewer, which then reports UNAUTHENTICATED.
package auth

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/threadline/threadline/internal/apperr"
)

// Keys signs and verifies tokens with one HMAC secret.
type Keys struct {
	secret []byte
	parser *jwt.Parser
}

// MinSecretLen is the shortest JWT secret accepted, in bytes.
const MinSecretLen = 16

// NewKeys returns Keys for secret.
func NewKeys(secret string) (*Keys, error) {
	if len(secret) < MinSecretLen {
		return nil, errors.New("auth: JWT secret must be at least 16 bytes")
	}
	return &Keys{
		secret: []byte(secret),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(5*time.Second),
		),
	}, nil
}

// Sign returns a token for userID that expires after ttl.
func (k *Keys) Sign(userID int64, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Subject:   strconv.FormatInt(userID, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(k.secret)
}

// Verify returns the user id of a valid token.
func (k *Keys) Verify(token string) (int64, error) {
	var claims jwt.RegisteredClaims
	_, err := k.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return k.secret, nil })
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil || id < 1 {
		return 0, errors.New("auth: subject is not a user id")
	}
	return id, nil
}

// VerifyHeader verifies an Authorization header value of the form "Bearer <token>".
func (k *Keys) VerifyHeader(header string) (int64, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return 0, errors.New("auth: authorization is not a bearer token")
	}
	return k.Verify(strings.TrimSpace(token))
}

type viewerKey struct{}

type viewer struct {
	id  int64
	err error
}

// WithViewer returns ctx carrying the viewer userID.
func WithViewer(ctx context.Context, userID int64) context.Context {
	return context.WithValue(ctx, viewerKey{}, viewer{id: userID})
}

// withFailure returns ctx recording that the request presented credentials that did not verify.
func withFailure(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, viewerKey{}, viewer{err: err})
}

// Viewer returns the viewer's user id, or UNAUTHENTICATED when the request has none.
func Viewer(ctx context.Context) (int64, error) {
	v, _ := ctx.Value(viewerKey{}).(viewer)
	if v.id == 0 {
		return 0, apperr.ErrUnauthenticated
	}
	return v.id, nil
}

// ViewerFailure returns why the request's credentials were refused, if they were.
func ViewerFailure(ctx context.Context) error {
	v, _ := ctx.Value(viewerKey{}).(viewer)
	return v.err
}

// Authenticate returns ctx with the viewer named by an Authorization header value. An empty
// header leaves ctx anonymous; a bad one leaves it anonymous and records the failure.
func (k *Keys) Authenticate(ctx context.Context, header string) context.Context {
	if header == "" {
		return ctx
	}
	id, err := k.VerifyHeader(header)
	if err != nil {
		return withFailure(ctx, err)
	}
	return WithViewer(ctx, id)
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
