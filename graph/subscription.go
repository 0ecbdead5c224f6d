package graph

import (
	"context"
	"errors"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/graph/streaming"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/live"
)

// subscribeMessages starts a messageAdded subscription (package live does the work). When the
// stream fails, the transport sends the reason as the operation's error message: a subscriber
// cut off for falling behind gets RATE_LIMITED with extensions.afterSeq, the seq to resubscribe
// after. The transport caps the subscriptions of one connection.
func subscribeMessages(ctx context.Context, hub *live.Hub, conversationID int64, afterSeq *int) (<-chan *chat.Message, error) {
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	if hub == nil {
		return nil, apperr.New(apperr.Internal, "subscriptions are not enabled on this server")
	}
	var after *int64
	if afterSeq != nil {
		v := int64(*afterSeq)
		after = &v
	}
	ch, err := hub.SubscribeMessages(ctx, viewer, conversationID, after, func(err error) {
		if err != nil {
			streaming.EndWith(ctx, streamError("messageAdded", err))
		}
	})
	if err != nil {
		if ctx.Err() != nil { // the client stopped the subscription while it started: end quietly
			ended := make(chan *chat.Message)
			close(ended)
			return ended, nil
		}
		return nil, err
	}
	return ch, nil
}

// subscribeEvents starts a conversationEvents subscription; it ends as messageAdded does, and a
// member removed meanwhile first receives the MemberRemovedEvent about them.
func subscribeEvents(ctx context.Context, hub *live.Hub, conversationID int64, afterEventSeq *int) (<-chan chat.Event, error) {
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	if hub == nil {
		return nil, apperr.New(apperr.Internal, "subscriptions are not enabled on this server")
	}
	var after *int64
	if afterEventSeq != nil {
		v := int64(*afterEventSeq)
		after = &v
	}
	ch, err := hub.SubscribeEvents(ctx, viewer, conversationID, after, func(err error) {
		if err != nil {
			streaming.EndWith(ctx, streamError("conversationEvents", err))
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			ended := make(chan chat.Event)
			close(ended)
			return ended, nil
		}
		return nil, err
	}
	return ch, nil
}

// subscribeViewer starts a viewerEvents subscription (package live does the work). Each event's
// conversation is read as it is when the event is delivered, with the viewer's unread count; an
// event about a conversation the viewer can no longer see (joined, then left at once) is
// skipped, its position carried by the next.
func subscribeViewer(ctx context.Context, r *Resolver, after *string) (<-chan chat.ViewerEvent, error) {
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	if r.Live == nil {
		return nil, apperr.New(apperr.Internal, "subscriptions are not enabled on this server")
	}
	var pos *chat.ViewerPosition
	if after != nil {
		p, err := chat.DecodeViewerPosition("after", viewer, *after)
		if err != nil {
			return nil, err
		}
		pos = &p
	}
	subCtx, stop := context.WithCancel(ctx)
	events, err := r.Live.SubscribeViewer(subCtx, viewer, pos, func(err error) {
		if err != nil {
			streaming.EndWith(ctx, streamError("viewerEvents", err))
		}
	})
	if err != nil {
		stop()
		if ctx.Err() != nil {
			ended := make(chan chat.ViewerEvent)
			close(ended)
			return ended, nil
		}
		return nil, err
	}
	out := make(chan chat.ViewerEvent)
	go func() {
		defer close(out)
		defer stop()
		for ev := range events {
			visible, err := withConversation(ctx, r.Chat, viewer, ev)
			if err != nil {
				// The client resumes after the last event it received and misses nothing.
				streaming.EndWith(ctx, streamError("viewerEvents", err))
				stop()
			}
			if err != nil || !visible {
				continue // after an error, until live closes the stream
			}
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		}
	}()
	return out, nil
}

// withConversation reads the conversation a viewer event shows; false when the viewer can no
// longer see it.
func withConversation(ctx context.Context, svc *chat.Service, viewer int64, ev chat.ViewerEvent) (bool, error) {
	var id int64
	var set func(*chat.Conversation)
	switch ev := ev.(type) {
	case *chat.ConversationActivity:
		id, set = ev.ConversationID, func(c *chat.Conversation) { ev.Conversation = c }
	case *chat.ConversationJoined:
		id, set = ev.ConversationID, func(c *chat.Conversation) { ev.Conversation = c }
	case *chat.ReadStateChanged:
		id, set = ev.ConversationID, func(c *chat.Conversation) { ev.Conversation = c }
	default:
		return true, nil
	}
	c, err := svc.Conversation(ctx, viewer, id)
	if errors.Is(err, apperr.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	set(c)
	return true, nil
}

// streamError presents the error that ended the subscription field. Errors other than the
// resume error were logged by package live; the client is told "internal error" and may
// resubscribe with the last seq it received.
func streamError(field string, err error) *gqlerror.Error {
	path := ast.Path{ast.PathName(field)}
	var resume *live.ResumeError
	if errors.As(err, &resume) {
		ext := map[string]any{"code": string(apperr.RateLimited)}
		switch {
		case resume.Viewer:
			ext["after"] = resume.Position
		case resume.Events:
			ext["afterEventSeq"] = resume.After
		default:
			ext["afterSeq"] = resume.After
		}
		return &gqlerror.Error{Message: resume.Error(), Path: path, Extensions: ext}
	}
	if pub := apperr.Public(err); pub != nil {
		return &gqlerror.Error{Message: pub.Message, Path: path, Extensions: map[string]any{"code": string(pub.Code)}}
	}
	return &gqlerror.Error{Message: "internal error", Path: path, Extensions: map[string]any{"code": string(apperr.Internal)}}
}
