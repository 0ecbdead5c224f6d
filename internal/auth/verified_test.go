package auth

import (
	"context"
	"testing"
	"time"
)

// A token verified before is accepted again without a new signature check, but the clock is
// checked every time: it is refused once it expires, and forgotten after verifiedTTL.
func TestVerifiedTokensRecheckTheClock(t *testing.T) {
	clk := newClock(time.Now())
	k, err := newKeys(Config{Secret: testSecret}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Sign(7, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.verified.get(tok, clk.now(), nil); !ok {
		t.Fatal("a verified token was not remembered")
	}
	clk.advance(30 * time.Second)
	if id, err := k.Verify(context.Background(), tok); err != nil || id.UserID != 7 {
		t.Fatalf("again: %+v %v", id, err)
	}
	clk.advance(verifiedTTL)
	if _, ok := k.verified.get(tok, clk.now(), nil); ok {
		t.Fatal("remembered past verifiedTTL")
	}
	if _, err := k.Verify(context.Background(), tok); err != nil { // verified afresh
		t.Fatal(err)
	}
	clk.advance(time.Minute + Leeway)
	wantRefused(t, func() error { _, err := k.Verify(context.Background(), tok); return err }(), errExpired)

	// A refused token is not remembered.
	bad := tok[:len(tok)-2] + "xx"
	wantRefused(t, func() error { _, err := k.Verify(context.Background(), bad); return err }(), errSignature)
	if _, ok := k.verified.get(bad, clk.now(), nil); ok {
		t.Fatal("a refused token was remembered")
	}
}

func TestVerifiedCacheIsBounded(t *testing.T) {
	var c verifiedCache
	now := time.Now()
	for i := range verifiedMax + 100 {
		c.put(string(rune(i))+"token", verifiedToken{verifiedAt: now})
	}
	if n := len(c.m); n > verifiedMax {
		t.Fatalf("%d tokens remembered, at most %d", n, verifiedMax)
	}
}
