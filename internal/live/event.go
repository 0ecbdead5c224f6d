package live

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/threadline/threadline/internal/chat"
)

// wireEvent is the JSON published on a conversation's channel: the whole event, with the message
// it is about and the names of the users it names, so that subscribers on other instances deliver
// it without reading PostgreSQL.
type wireEvent struct {
	Kind           string       `json:"kind"`
	EventSeq       int64        `json:"eventSeq"`
	ConversationID int64        `json:"conversationId"`
	Actor          chat.User    `json:"actor"`
	At             time.Time    `json:"at"`
	Message        *wireMessage `json:"message,omitempty"`
	Emoji          string       `json:"emoji,omitempty"`
	Added          bool         `json:"added,omitempty"`
	Title          string       `json:"title,omitempty"`
	Users          []chat.User  `json:"users,omitempty"`
}

type wireMessage struct {
	ID              int64           `json:"id"`
	Seq             int64           `json:"seq"`
	SenderID        int64           `json:"senderId"`
	SenderName      string          `json:"senderName"`
	Body            string          `json:"body"`
	CreatedAt       time.Time       `json:"createdAt"`
	ClientMessageID *string         `json:"clientMessageId,omitempty"`
	EditedAt        *time.Time      `json:"editedAt,omitempty"`
	DeletedAt       *time.Time      `json:"deletedAt,omitempty"`
	Version         int             `json:"version"`
	Reactions       []chat.Reaction `json:"reactions,omitempty"`
}

// The kinds of wireEvent.
const (
	kindMessageAdded        = "message_added"
	kindMessageEdited       = "message_edited"
	kindMessageDeleted      = "message_deleted"
	kindReactionChanged     = "reaction_changed"
	kindMembersAdded        = "members_added"
	kindMemberRemoved       = "member_removed"
	kindConversationRenamed = "conversation_renamed"
)

func encodeEvent(ev chat.Event) ([]byte, error) {
	h := ev.Header()
	w := wireEvent{EventSeq: h.EventSeq, ConversationID: h.ConversationID, Actor: h.Actor, At: h.At}
	switch ev := ev.(type) {
	case *chat.MessageAdded:
		w.Kind = kindMessageAdded
	case *chat.MessageEdited:
		w.Kind = kindMessageEdited
	case *chat.MessageDeleted:
		w.Kind = kindMessageDeleted
	case *chat.ReactionChanged:
		w.Kind, w.Emoji, w.Added = kindReactionChanged, ev.Emoji, ev.Added
	case *chat.MembersAdded:
		w.Kind, w.Users = kindMembersAdded, ev.Users
	case *chat.MemberRemoved:
		w.Kind, w.Users = kindMemberRemoved, []chat.User{ev.User}
	case *chat.ConversationRenamed:
		w.Kind, w.Title = kindConversationRenamed, ev.Title
	default:
		return nil, errors.New("live: unknown event type")
	}
	if m := chat.EventMessage(ev); m != nil {
		w.Message = &wireMessage{
			ID: m.ID, Seq: m.Seq, SenderID: m.SenderID, SenderName: m.SenderName, Body: m.Body, CreatedAt: m.CreatedAt,
			ClientMessageID: m.ClientMessageID, EditedAt: m.EditedAt, DeletedAt: m.DeletedAt, Version: m.Version, Reactions: m.Reactions,
		}
	}
	return json.Marshal(w)
}

func decodeEvent(payload string) (chat.Event, error) {
	var w wireEvent
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		return nil, err
	}
	if w.ConversationID < 1 || w.EventSeq < 1 {
		return nil, errors.New("live: event without conversation or event_seq")
	}
	h := chat.EventHeader{EventSeq: w.EventSeq, ConversationID: w.ConversationID, Actor: w.Actor, At: w.At}
	var m *chat.Message
	if w.Message != nil {
		m = &chat.Message{
			ID: w.Message.ID, ConversationID: w.ConversationID, Seq: w.Message.Seq, SenderID: w.Message.SenderID,
			SenderName: w.Message.SenderName, Body: w.Message.Body, CreatedAt: w.Message.CreatedAt,
			ClientMessageID: w.Message.ClientMessageID, EditedAt: w.Message.EditedAt, DeletedAt: w.Message.DeletedAt,
			Version: w.Message.Version, Reactions: w.Message.Reactions,
		}
		if m.ID < 1 || m.Seq < 1 {
			return nil, errors.New("live: message event without message id or seq")
		}
	}
	needsMessage := func(ev chat.Event) (chat.Event, error) {
		if m == nil {
			return nil, errors.New("live: message event without its message")
		}
		return ev, nil
	}
	switch w.Kind {
	case kindMessageAdded:
		return needsMessage(&chat.MessageAdded{EventHeader: h, Message: m})
	case kindMessageEdited:
		return needsMessage(&chat.MessageEdited{EventHeader: h, Message: m})
	case kindMessageDeleted:
		return needsMessage(&chat.MessageDeleted{EventHeader: h, Message: m})
	case kindReactionChanged:
		return needsMessage(&chat.ReactionChanged{EventHeader: h, Message: m, Emoji: w.Emoji, Added: w.Added})
	case kindMembersAdded:
		return &chat.MembersAdded{EventHeader: h, Users: w.Users}, nil
	case kindMemberRemoved:
		if len(w.Users) != 1 {
			return nil, errors.New("live: member_removed without its user")
		}
		return &chat.MemberRemoved{EventHeader: h, User: w.Users[0]}, nil
	case kindConversationRenamed:
		return &chat.ConversationRenamed{EventHeader: h, Title: w.Title}, nil
	}
	return nil, errors.New("live: unknown event kind")
}

// wireUserEvent is the JSON published on a user's channel.
type wireUserEvent struct {
	UserID               int64     `json:"userId"`
	EventSeq             int64     `json:"eventSeq"`
	Kind                 string    `json:"kind"`
	ConversationID       int64     `json:"conversationId"`
	ConversationEventSeq int64     `json:"conversationEventSeq,omitempty"`
	ReadSeq              int64     `json:"readSeq,omitempty"`
	At                   time.Time `json:"at"`
}

func encodeUserEvent(ev *chat.UserEvent) ([]byte, error) {
	return json.Marshal(wireUserEvent{
		UserID: ev.UserID, EventSeq: ev.EventSeq, Kind: string(ev.Kind), ConversationID: ev.ConversationID,
		ConversationEventSeq: ev.ConversationEventSeq, ReadSeq: ev.ReadSeq, At: ev.At,
	})
}

func decodeUserEvent(payload string) (*chat.UserEvent, error) {
	var w wireUserEvent
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		return nil, err
	}
	if w.UserID < 1 || w.EventSeq < 1 || w.ConversationID < 1 {
		return nil, errors.New("live: user event without user, event_seq or conversation")
	}
	switch k := chat.UserEventKind(w.Kind); k {
	case chat.UserJoined, chat.UserLeft, chat.UserRead:
		return &chat.UserEvent{
			UserID: w.UserID, EventSeq: w.EventSeq, Kind: k, ConversationID: w.ConversationID,
			ConversationEventSeq: w.ConversationEventSeq, ReadSeq: w.ReadSeq, At: w.At,
		}, nil
	}
	return nil, errors.New("live: unknown user event kind")
}
