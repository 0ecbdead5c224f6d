// Package graph is the GraphQL layer: the schema (*.graphqls), gqlgen's generated executor, the
// resolvers, and the handler that serves them.
//
// Resolvers are one-liners over the per-operation loaders (package loader) and the chat
// service. The helpers they call live in helpers.go; nothing here talks SQL or Redis.
//
// Message.sender is not a resolver: each history read returns the sender's name joined to the
// message, and the field binds to chat.Message.Sender. A page with senders is thus one statement,
// and gqlgen does not start a goroutine per message for it. Users otherwise (me, members) load
// through dataloaders.
package graph

import (
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/live"
)

// Resolver holds the long-lived services the resolvers use. Per-operation state (the viewer,
// the loaders) travels in the context.
type Resolver struct {
	Chat *chat.Service
	Live *live.Hub // messageAdded subscriptions; nil: not enabled
}
