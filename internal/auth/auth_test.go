package auth

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/threadline/threadline/internal/apperr"
)

func TestSignAndVerify(t *testing.T) {
	k, err := NewKeys("0123456789abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Sign(7, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := k.VerifyHeader("Bearer " + tok); err != nil || id != 7 {
		t.Fatalf("got %d, %v", id, err)
	}
	if id, err := k.VerifyHeader("bearer  " + tok); err != nil || id != 7 {
		t.Fatalf("case-insensitive scheme: %d, %v", id, err)
	}
	ctx := k.Authenticate(context.Background(), "Bearer "+tok)
	if id, err := Viewer(ctx); err != nil || id != 7 {
		t.Fatalf("viewer %d, %v", id, err)
	}
}

func TestRefusedTokens(t *testing.T) {
	k, _ := NewKeys("0123456789abcdef0123")
	other, _ := NewKeys("another-secret-0123456789")
	wrongKey, _ := other.Sign(7, time.Minute)
	expired, _ := k.Sign(7, -time.Minute)
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, jwt.MapClaims{"sub": "7", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("0123456789abcdef0123"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "7", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, header := range map[string]string{
		"wrong key": "Bearer " + wrongKey, "expired": "Bearer " + expired, "hs384": "Bearer " + hs384,
		"none": "Bearer " + none, "no scheme": wrongKey, "empty bearer": "Bearer ",
	} {
		ctx := k.Authenticate(context.Background(), header)
		if _, err := Viewer(ctx); apperr.CodeOf(err) != apperr.Unauthenticated {
			t.Errorf("%s: viewer error %v", name, err)
		}
		if ViewerFailure(ctx) == nil {
			t.Errorf("%s: no failure recorded", name)
		}
	}
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := NewKeys("short"); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}
