-- +goose Up
-- Messages that change and members who come and go.

-- Every change to a conversation is an event, numbered per conversation by event_seq: 1, 2, 3, …
-- without holes, in commit order. A writer takes the next event_seq by bumping last_event_seq
-- under the conversation's row lock, as it takes the next seq of a message. Sending a message
-- bumps both.
ALTER TABLE conversations ADD COLUMN last_event_seq bigint NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0);

-- The creator is the owner; an owner who leaves hands ownership to the longest-standing member.
ALTER TABLE conversation_members
    ADD COLUMN role text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member'));
UPDATE conversation_members m SET role = 'owner'
FROM conversations c WHERE c.id = m.conversation_id AND c.created_by = m.user_id;

-- A deleted message is a tombstone: it keeps its seq (offset pages stay seq ranges), its body is
-- empty and its reactions are gone. version is 1 when sent and grows by one with each edit or
-- deletion. reactions is the message's reactions grouped by emoji, most used first
-- ([{"emoji": "👍", "count": 2}, …]), kept by the writer of each reaction under the
-- conversation's row lock, so that a page of history reads them without a join.
ALTER TABLE messages
    ADD COLUMN edited_at  timestamptz,
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN version    integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN reactions  jsonb   NOT NULL DEFAULT '[]';
ALTER TABLE messages DROP CONSTRAINT messages_body_check;
ALTER TABLE messages ADD CONSTRAINT messages_body_check CHECK (
    (deleted_at IS NULL AND char_length(body) BETWEEN 1 AND 4000) OR (deleted_at IS NOT NULL AND body = ''));

-- Ready for distribution by conversation (Citus): every primary and unique key of a table that
-- belongs to a conversation includes conversation_id. Message ids stay unique (an identity
-- column); lookups by id alone use a plain index.
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (conversation_id, id);
CREATE INDEX messages_id_idx ON messages (id);

-- One row per (user, message, emoji).
CREATE TABLE reactions (
    conversation_id bigint      NOT NULL,
    message_id      bigint      NOT NULL,
    user_id         bigint      NOT NULL REFERENCES users (id),
    emoji           text        NOT NULL CHECK (char_length(emoji) BETWEEN 1 AND 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, message_id, user_id, emoji),
    FOREIGN KEY (conversation_id, message_id) REFERENCES messages (conversation_id, id)
);

-- The events of each conversation, for replay (conversationEvents with afterEventSeq) and
-- catch-up (Conversation.events). A message event names the message; it is read as it is now.
CREATE TABLE conversation_events (
    conversation_id bigint      NOT NULL REFERENCES conversations (id),
    event_seq       bigint      NOT NULL CHECK (event_seq > 0),
    kind            text        NOT NULL CHECK (kind IN ('message_added', 'message_edited', 'message_deleted',
                                    'reaction_changed', 'members_added', 'member_removed', 'conversation_renamed')),
    actor_id        bigint      NOT NULL REFERENCES users (id),
    at              timestamptz NOT NULL DEFAULT now(),
    message_id      bigint,     -- message events
    emoji           text,       -- reaction_changed
    added           boolean,    -- reaction_changed
    title           text,       -- conversation_renamed
    user_ids        bigint[],   -- members_added, member_removed
    PRIMARY KEY (conversation_id, event_seq)
);

-- The messages sent before events existed become their message_added events, so that every
-- conversation's events start at 1.
INSERT INTO conversation_events (conversation_id, event_seq, kind, actor_id, at, message_id)
SELECT conversation_id, seq, 'message_added', sender_id, created_at, id FROM messages;
UPDATE conversations SET last_event_seq = last_seq;

-- The user directory: case-insensitive search by part of a name, and the listing order.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_name_trgm_idx ON users USING gin (lower(name) gin_trgm_ops);
CREATE INDEX users_name_idx ON users (lower(name), id);

-- +goose Down
DROP INDEX users_name_idx;
DROP INDEX users_name_trgm_idx;
DROP TABLE conversation_events;
DROP TABLE reactions;
DROP INDEX messages_id_idx;
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (id);
DELETE FROM messages WHERE deleted_at IS NOT NULL;
ALTER TABLE messages DROP CONSTRAINT messages_body_check;
ALTER TABLE messages ADD CONSTRAINT messages_body_check CHECK (char_length(body) BETWEEN 1 AND 4000);
ALTER TABLE messages DROP COLUMN reactions, DROP COLUMN version, DROP COLUMN deleted_at, DROP COLUMN edited_at;
ALTER TABLE conversation_members DROP COLUMN role;
ALTER TABLE conversations DROP COLUMN last_event_seq;
