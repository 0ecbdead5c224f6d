package graph

import (
	"context"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/typing"
)

// errNoTyping answers typing fields on a server built without typing indicators.
var errNoTyping = apperr.New(apperr.Internal, "typing indicators are not enabled on this server")

// setTyping records the viewer's typing state in a conversation (package typing: Redis only).
// The mutation costs SetTypingCost requests of the viewer's rate limit (MutationLimits).
func setTyping(ctx context.Context, svc *typing.Service, viewer, conversationID int64, typing bool) (bool, error) {
	if svc == nil {
		return false, errNoTyping
	}
	if err := svc.Set(ctx, viewer, conversationID, typing); err != nil {
		return false, err
	}
	return true, nil
}

// subscribeTyping starts a typing subscription: first the members typing now, then every
// change. It ends with NOT_FOUND when the viewer stops being a member, and with RATE_LIMITED
// when the client reads too slowly (resubscribing loses nothing but past events). The
// transport counts it against the connection's subscriptions like any other.
func subscribeTyping(ctx context.Context, svc *typing.Service, conversationID int64) (<-chan *chat.TypingEvent, error) {
	return startStream(ctx, "typing", func(viewer int64, onEnd func(error)) (<-chan *chat.TypingEvent, error) {
		if svc == nil {
			return nil, errNoTyping
		}
		return svc.Subscribe(ctx, viewer, conversationID, onEnd)
	})
}
