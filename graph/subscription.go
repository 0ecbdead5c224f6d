package graph

import (
	"context"
	"errors"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/graph/streaming"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/live"
)

// errNoSubscriptions answers subscriptions on a server built without the live hub.
var errNoSubscriptions = apperr.New(apperr.Internal, "subscriptions are not enabled on this server")

// startStream starts a subscription of the viewer with start, which it hands the callback that
// ends the stream: when the stream fails, the transport sends the reason as the operation's
// error message (streamError of field). A start that fails because the client stopped the
// subscription while it started ends quietly: the channel returned is closed.
func startStream[T any](ctx context.Context, field string, start func(viewer int64, onEnd func(error)) (<-chan T, error)) (<-chan T, error) {
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := start(viewer, func(err error) {
		if err != nil {
			streaming.EndWith(ctx, streamError(field, err))
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			ended := make(chan T)
			close(ended)
			return ended, nil
		}
		return nil, err
	}
	return ch, nil
}

// int64Arg converts an optional Int argument.
func int64Arg(v *int) *int64 {
	if v == nil {
		return nil
	}
	n := int64(*v)
	return &n
}

// subscribeMessages starts a messageAdded subscription (package live does the work). A
// subscriber cut off for falling behind gets RATE_LIMITED with extensions.afterSeq, the seq to
// resubscribe after. The transport caps the subscriptions of one connection.
func subscribeMessages(ctx context.Context, hub *live.Hub, conversationID int64, afterSeq *int) (<-chan *chat.Message, error) {
	return startStream(ctx, "messageAdded", func(viewer int64, onEnd func(error)) (<-chan *chat.Message, error) {
		if hub == nil {
			return nil, errNoSubscriptions
		}
		ch, err := hub.SubscribeMessages(ctx, viewer, conversationID, int64Arg(afterSeq), onEnd)
		if err != nil {
			return nil, err
		}
		return deliverShared(ctx, hub, "messageAdded", viewer, ch), nil
	})
}

// subscribeEvents starts a conversationEvents subscription; it ends as messageAdded does, and a
// member removed meanwhile first receives the MemberRemovedEvent about them.
func subscribeEvents(ctx context.Context, hub *live.Hub, conversationID int64, afterEventSeq *int) (<-chan chat.Event, error) {
	return startStream(ctx, "conversationEvents", func(viewer int64, onEnd func(error)) (<-chan chat.Event, error) {
		if hub == nil {
			return nil, errNoSubscriptions
		}
		ch, err := hub.SubscribeEvents(ctx, viewer, conversationID, int64Arg(afterEventSeq), onEnd)
		if err != nil {
			return nil, err
		}
		return deliverShared(ctx, hub, "conversationEvents", viewer, ch), nil
	})
}

// subscribeViewer starts a viewerEvents subscription (package live does the work). Each event's
// conversation is read as it is when the event is delivered, with the viewer's unread count; an
// event about a conversation the viewer can no longer see (joined, then left at once) is
// skipped, its position carried by the next.
func subscribeViewer(ctx context.Context, r *Resolver, after *string) (<-chan chat.ViewerEvent, error) {
	return startStream(ctx, "viewerEvents", func(viewer int64, onEnd func(error)) (<-chan chat.ViewerEvent, error) {
		if r.Live == nil {
			return nil, errNoSubscriptions
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
		events, err := r.Live.SubscribeViewer(subCtx, viewer, pos, onEnd)
		if err != nil {
			stop()
			return nil, err
		}
		out := make(chan chat.ViewerEvent)
		go func() {
			defer close(out)
			defer stop()
			for ev := range events {
				visible, err := withConversation(ctx, ev)
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
	})
}

// withConversation reads the conversation a viewer event shows, as the viewer sees it now;
// false when the viewer can no longer see it. The reads of the events of one conversation's
// subscribers on the instance go out together (loader.SidebarConversation).
func withConversation(ctx context.Context, ev chat.ViewerEvent) (bool, error) {
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
	c, err := loader.SidebarConversation(ctx, id)
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

// lastMessagePage is the conversation's newest page of one message (its lastMessage): read once
// for the sidebar batch it was read in (chat.Conversation.LatestPage), else through the
// operation's loaders.
func lastMessagePage(ctx context.Context, c *chat.Conversation) (chat.Page, error) {
	if c.LatestPage != nil {
		return c.LatestPage(ctx)
	}
	return loader.Page(ctx, chat.PageKey{ConversationID: c.ID, Limit: 1})
}
