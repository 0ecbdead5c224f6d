package graph

import (
	"context"

	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/respcache"
)

// memberships loads c's memberships for a field that lists its members (Conversation.members,
// Conversation.memberships), and prefetches the online state of those users when the field's
// selection reaches it through path. The response depends on c's generation: members come and
// go, and any change moves it.
func memberships(ctx context.Context, c *chat.Conversation, path []selection) ([]chat.Membership, error) {
	respcache.Depend(ctx, c.Generation)
	ms, err := loader.Memberships(ctx, c.ID)
	prefetchOnline(ctx, ms, idOfMember, path)
	return ms, err
}
