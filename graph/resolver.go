// Package graph is the GraphQL layer: the schema (*.graphqls), gqlgen's generated executor, the
// resolvers, and the handler that serves them.
//
// Resolvers are a few lines each over the per-operation loaders (package loader) and the chat
// service, and declare to the response cache what their result depends on (package respcache);
// nothing here talks SQL or Redis. The read path of a page of history, in the order a request
// takes it: app/app.go (wiring) → schema.resolvers.go (Conversation.messages) → loader/loader.go
// (and loader/prefetch.go, which loads a query's pages before its resolvers run) →
// internal/cache/history.go (Redis) → db/store.go with db/query/messages.sql (PostgreSQL).
//
// Message.sender is not a resolver: each history read returns the sender's name joined to the
// message, and the field binds to chat.Message.Sender. A page with senders is thus one statement,
// and gqlgen does not start a goroutine per message for it. Users otherwise (me, members) load
// through dataloaders.
package graph

import (
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/live"
	"github.com/threadline/threadline/internal/typing"
)

// Resolver holds the long-lived services the resolvers use. Per-operation state (the viewer,
// the loaders) travels in the context.
type Resolver struct {
	Chat    *chat.Service
	Live    *live.Hub       // messageAdded subscriptions; nil: not enabled
	Typists *typing.Service // setTyping and the typing subscription; nil: not enabled
}
