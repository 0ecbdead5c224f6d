package cache_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/testenv"
)

// duringRead is the database store with a hook that runs after ConversationPagesForMember has
// read, before its result reaches the cache: a write that commits (and moves the token) between
// a miss's read and its fill.
type duringRead struct {
	*db.Store
	hook func()
}

func (s *duringRead) ConversationPagesForMember(ctx context.Context, userID int64, keys []chat.PageKey) ([]*chat.Conversation, []chat.Page, error) {
	convs, pages, err := s.Store.ConversationPagesForMember(ctx, userID, keys)
	if s.hook != nil {
		s.hook()
	}
	return convs, pages, err
}

// TestCachedConversationPages: a conversation read with its page comes from the database once,
// then from Redis with no statement and the same value; a member's read position is not
// served; a non-member gets nil every time; after a rename or a removal (the token moved) the
// next read sees it.
func TestCachedConversationPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.NewRedis(t), 30)
	ctx := context.Background()
	alice, bob := f.users[0], f.users[1]
	stranger := int64(987654)
	keys := []chat.PageKey{{ConversationID: f.conv, Limit: 10}, {ConversationID: f.conv, Limit: 1}, {ConversationID: f.conv, Limit: 5, Offset: 20}}
	read := func(user int64) ([]*chat.Conversation, []chat.Page, int64) {
		t.Helper()
		before := f.sqlStatements.Load()
		convs, pages, err := f.store.CachedConversationPages(ctx, user, keys)
		if err != nil {
			t.Fatal(err)
		}
		return convs, pages, f.sqlStatements.Load() - before
	}
	if err := f.service.MarkRead(ctx, alice, f.conv, 12); err != nil {
		t.Fatal(err)
	}
	coldConvs, coldPages, n := read(alice)
	if n != 1 {
		t.Errorf("cold read: %d statements, want 1", n)
	}
	warmConvs, warmPages, n := read(alice)
	if n != 0 {
		t.Errorf("warm read: %d statements, want none", n)
	}
	if diff := cmp.Diff(coldConvs, warmConvs); diff != "" {
		t.Errorf("conversations (-cold +warm):\n%s", diff)
	}
	if diff := cmp.Diff(coldPages, warmPages); diff != "" {
		t.Errorf("pages (-cold +warm):\n%s", diff)
	}
	// What the database store reads, but for the read position, which is not served.
	dbConvs, dbPages, err := db.NewStore(f.pool).ConversationPagesForMember(ctx, alice, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if dbConvs[i].ViewerLastReadSeq != 12 || warmConvs[i].ViewerLastReadSeq != 0 {
			t.Errorf("key %d: read position %d from the database, %d from the cache, want 12 and 0", i, dbConvs[i].ViewerLastReadSeq, warmConvs[i].ViewerLastReadSeq)
		}
		dbConvs[i].ViewerLastReadSeq = 0
		dbConvs[i].Generation, dbPages[i].Generation = warmConvs[i].Generation, warmPages[i].Generation
		if warmConvs[i].Generation.Key != cache.GenerationKey(f.conv) || warmConvs[i].Generation.Value == "" {
			t.Errorf("key %d: generation %+v", i, warmConvs[i].Generation)
		}
	}
	if diff := cmp.Diff(dbConvs, warmConvs, cmpopts.IgnoreFields(chat.Conversation{}, "LatestPage")); diff != "" {
		t.Errorf("conversations (-database +cache):\n%s", diff)
	}
	if diff := cmp.Diff(dbPages, warmPages); diff != "" {
		t.Errorf("pages (-database +cache):\n%s", diff)
	}
	for range 2 {
		if convs, _, _ := read(stranger); convs[0] != nil || convs[1] != nil || convs[2] != nil {
			t.Errorf("a non-member reads %+v", convs)
		}
	}

	if err := f.service.Rename(ctx, bob, f.conv, "renamed"); err != nil {
		t.Fatal(err)
	}
	if convs, _, _ := read(alice); convs[0] == nil || convs[0].Title != "renamed" {
		t.Errorf("after the rename: %+v", convs[0])
	}
	read(bob) // warm
	if err := f.service.RemoveMember(ctx, alice, f.conv, bob); err != nil {
		t.Fatal(err)
	}
	if convs, _, _ := read(bob); convs[0] != nil {
		t.Errorf("after the removal, the removed member reads %+v", convs[0])
	}
}

// TestCachedConversationFillAfterAWrite: a miss whose database read came before a rename, and
// whose fill comes after the rename moved the token (and after another read stored the page
// under the new token), stores what it read under the token it read, which no later read uses:
// the next read shows the new title.
func TestCachedConversationFillAfterAWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.NewRedis(t), 10)
	ctx := context.Background()
	alice := f.users[0]
	keys := []chat.PageKey{{ConversationID: f.conv, Limit: 10}}
	inner := &duringRead{Store: db.NewStore(f.pool)}
	racing := cache.NewStore(inner, f.rdb, f.breaker, cache.Config{})
	t.Cleanup(racing.Close)
	inner.hook = func() {
		inner.hook = nil
		if err := f.service.Rename(ctx, alice, f.conv, "after"); err != nil {
			t.Error(err)
		}
		if _, err := racing.MessagePages(ctx, keys); err != nil { // the page, under the new token
			t.Error(err)
		}
	}
	convs, _, err := racing.CachedConversationPages(ctx, alice, keys)
	if err != nil {
		t.Fatal(err)
	}
	if convs[0].Title != "cached" {
		t.Fatalf("the racing read saw %q, want the title before the rename", convs[0].Title)
	}
	for range 2 {
		convs, _, err := racing.CachedConversationPages(ctx, alice, keys)
		if err != nil {
			t.Fatal(err)
		}
		if convs[0] == nil || convs[0].Title != "after" {
			t.Fatalf("after the rename: %+v", convs[0])
		}
	}
}
