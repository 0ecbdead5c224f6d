package db_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/db/dbtest"
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
