package db_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

// ConversationForMembers answers, for each user, exactly what that user's own reads answer: the
// conversation as ConversationsByIDForMember reads it for them, with the unread count of
// UnreadCounts; nil for a user who is not a member, all nil for a missing conversation. Read
// positions, senders and deletions are drawn at random, so unread counts differ per member.
func TestConversationForMembersMatchesPerMemberReads(t *testing.T) {
	t.Parallel()
	store, d := newStore(t)
	direct := dbtest.Open(t, d.DirectURL)
	ctx := context.Background()
	users := dbtest.Users(t, direct, "A", "B", "C", "D", "E", "F", "G", "H")
	members, stranger := users[:7], users[7]
	conv := dbtest.Conversation(t, direct, "busy", members...)
	empty := dbtest.Conversation(t, direct, "empty", members[:3]...)
	dbtest.Messages(t, direct, conv, members[:4], 40)
	rng := rand.New(rand.NewPCG(7, 11))
	for range 6 { // tombstones, which nobody counts
		if _, err := direct.Exec(ctx, "UPDATE messages SET deleted_at = now(), body = '' WHERE conversation_id = $1 AND seq = $2",
			conv, 1+rng.IntN(40)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range members {
		if seq := rng.IntN(41); seq > 0 {
			if _, err := store.MarkRead(ctx, m, conv, int64(seq)); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, tc := range []struct {
		name  string
		conv  int64
		users []int64
	}{
		{"every member", conv, members},
		{"members and a stranger, out of order", conv, []int64{members[5], stranger, members[0], members[3]}},
		{"one member", conv, members[2:3]},
		{"a stranger only", conv, []int64{stranger}},
		{"an empty conversation", empty, users},
		{"a missing conversation", 987654, members},
		{"nobody", conv, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.ConversationForMembers(ctx, tc.conv, tc.users)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]*chat.Conversation, len(tc.users))
			for i, u := range tc.users {
				convs, err := store.ConversationsByIDForMember(ctx, u, []int64{tc.conv})
				if err != nil {
					t.Fatal(err)
				}
				if convs[0] == nil {
					continue
				}
				unread, err := store.UnreadCounts(ctx, u, []int64{tc.conv})
				if err != nil {
					t.Fatal(err)
				}
				convs[0].ViewerUnread = &unread[0]
				want[i] = convs[0]
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// UserStreamStart reads, in one statement, the user's newest event, the oldest kept, and each
// of their conversations at its newest event; a user in none has no conversations, a missing
// user is ErrNotFound.
func TestUserStreamStart(t *testing.T) {
	t.Parallel()
	store, d := newStore(t)
	direct := dbtest.Open(t, d.DirectURL)
	ctx := context.Background()
	u := dbtest.Users(t, direct, "A", "B", "Loner")
	c1 := dbtest.Conversation(t, direct, "one", u[0], u[1])
	c2 := dbtest.Conversation(t, direct, "two", u[1])
	dbtest.Messages(t, direct, c1, u[:2], 5)
	for _, seq := range []int64{2, 4} { // two events of B's own
		if _, err := store.MarkRead(ctx, u[1], c1, seq); err != nil {
			t.Fatal(err)
		}
	}
	type start struct {
		Last, FirstKept int64
		Conversations   map[int64]int64
	}
	for _, tc := range []struct {
		name string
		user int64
		want start
	}{
		{"in two conversations, with events", u[1], start{2, 1, map[int64]int64{c1: 5, c2: 0}}},
		{"in one, without events", u[0], start{0, 0, map[int64]int64{c1: 5}}},
		{"in none", u[2], start{0, 0, map[int64]int64{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got start
			var err error
			got.Last, got.FirstKept, got.Conversations, err = store.UserStreamStart(ctx, tc.user)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, _, _, err := store.UserStreamStart(ctx, 424242); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("a missing user: %v, want ErrNotFound", err)
	}
}
