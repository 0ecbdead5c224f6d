-- name: ConversationsByIDForMember :many
-- The given conversations that the user is a member of; the others are left out, so a
-- non-member sees exactly what a stranger to a missing conversation sees. With each, the user's
-- read position.
SELECT c.id, c.title, c.created_at, c.last_seq, c.last_message_at, c.last_event_seq, m.last_read_seq
FROM conversations c
JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = @user_id
WHERE c.id = ANY(@ids::bigint[]);

-- name: ConversationListByMember :many
-- A user's conversations, latest activity first, keyset-paginated on (last_message_at, id), each
-- with the user's read position and, when with_unread, their unread count: the messages after
-- the read position that are not deleted and that the user did not send (counted on
-- messages_unread_idx), for a list that shows them (the sidebar) in one statement. Without
-- with_unread the count is 0 and not computed: CASE evaluates only the branch it takes.
SELECT c.id, c.title, c.created_at, c.last_seq, c.last_message_at, c.last_event_seq,
       m.last_read_seq,
       (CASE WHEN @with_unread::boolean THEN
          (SELECT count(*) FROM messages u
           WHERE u.conversation_id = c.id AND u.seq > m.last_read_seq AND u.deleted_at IS NULL
             AND u.sender_id <> m.user_id)
        ELSE 0 END)::bigint AS unread
FROM conversation_members m
JOIN conversations c ON c.id = m.conversation_id
WHERE m.user_id = @user_id
  AND (NOT @has_cursor::boolean
       OR (c.last_message_at, c.id) < (@after_time::timestamptz, @after_id::bigint))
ORDER BY c.last_message_at DESC, c.id DESC
LIMIT @row_limit;

-- name: ConversationInsert :one
-- A new conversation, whose first event (event_seq 1) adds its members.
INSERT INTO conversations (title, created_by, last_event_seq)
VALUES (@title, @created_by, 1)
RETURNING id, title, created_at, last_seq, last_message_at, last_event_seq;

-- name: ConversationBumpEvent :one
-- Takes the next event_seq of a conversation the actor is a member of, under its row lock, and
-- returns the actor's role and name, and the members before the change. No row: not found, or
-- not a member.
UPDATE conversations c
SET last_event_seq = c.last_event_seq + 1
FROM conversation_members m, users u
WHERE c.id = @id AND m.conversation_id = c.id AND m.user_id = @actor_id AND u.id = m.user_id
RETURNING c.last_event_seq, m.role, u.name AS actor_name, now()::timestamptz AS at,
          (SELECT array_agg(x.user_id) FROM conversation_members x WHERE x.conversation_id = c.id)::bigint[] AS member_ids;

-- name: UnreadCounts :many
-- The user's unread count in each of the given conversations they are a member of.
SELECT m.conversation_id,
       (SELECT count(*) FROM messages u
        WHERE u.conversation_id = m.conversation_id AND u.seq > m.last_read_seq AND u.deleted_at IS NULL
          AND u.sender_id <> m.user_id)::bigint AS unread
FROM conversation_members m
WHERE m.user_id = @user_id AND m.conversation_id = ANY(@ids::bigint[]);

-- name: UnreadTotal :one
-- The user's unread messages over all their conversations.
SELECT coalesce(sum(n.unread), 0)::bigint AS total
FROM conversation_members m
CROSS JOIN LATERAL (
    SELECT count(*) AS unread FROM messages u
    WHERE u.conversation_id = m.conversation_id AND u.seq > m.last_read_seq AND u.deleted_at IS NULL
      AND u.sender_id <> m.user_id
) n
WHERE m.user_id = @user_id;

-- name: ConversationRename :one
UPDATE conversations SET title = @title WHERE id = @id
RETURNING id, title, created_at, last_seq, last_message_at, last_event_seq;

-- name: ConversationByID :one
-- A conversation as it is after a change made in this transaction.
SELECT id, title, created_at, last_seq, last_message_at, last_event_seq
FROM conversations WHERE id = @id;
