-- +goose Up
-- The sidebar: read positions, unread counts, and each user's own stream of events.

-- A member's read position: the seq of the last message they read (0: none), and when they last
-- moved it. It only moves forward (MemberMarkRead).
ALTER TABLE conversation_members
    ADD COLUMN last_read_seq bigint NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    ADD COLUMN read_at       timestamptz;

-- Unread counts: the messages after a read position that are not deleted and that the reader
-- did not send, counted from this index alone (an index-only scan once the visibility map is
-- set), without visiting the messages themselves.
CREATE INDEX messages_unread_idx ON messages (conversation_id, seq) INCLUDE (sender_id)
    WHERE deleted_at IS NULL;

-- Each user's own events, numbered per user by event_seq 1, 2, 3, … without holes in commit
-- order, as a conversation numbers its events: a writer takes the next number by bumping
-- users.last_event_seq under the user's row lock. They are what a user's sidebar stream
-- (viewerEvents) cannot learn from the events of the conversations it follows: that the user
-- joined a conversation, left it, or moved their read position in it. One row per user per
-- such change; nothing is written per member when a message is sent.
ALTER TABLE users ADD COLUMN last_event_seq bigint NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0);

CREATE TABLE user_events (
    user_id                bigint      NOT NULL REFERENCES users (id),
    event_seq              bigint      NOT NULL CHECK (event_seq > 0),
    kind                   text        NOT NULL CHECK (kind IN ('joined', 'left', 'read')),
    conversation_id        bigint      NOT NULL,
    -- joined, left: the conversation's event (members_added, member_removed) that made it.
    conversation_event_seq bigint,
    -- read: the read position it moved to.
    read_seq               bigint,
    at                     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_seq)
);

-- +goose Down
DROP TABLE user_events;
ALTER TABLE users DROP COLUMN last_event_seq;
DROP INDEX messages_unread_idx;
ALTER TABLE conversation_members DROP COLUMN read_at, DROP COLUMN last_read_seq;
