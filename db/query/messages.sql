-- name: MessagePages :many
-- Pages of several conversations in one statement, newest first. Each key is
-- (conversation, limit, offset, before); a page reads limit+1 rows so that the caller can tell
-- whether more follow. Since seq runs 1..last_seq without holes (a deleted message is a
-- tombstone that keeps its seq), offset o is the seq range seq <= last_seq - o, and a page by
-- cursor the range seq < before (the caller passes the largest bigint for an offset page): one
-- index range scan, whatever the depth, to the lower of the two bounds.
SELECT k.ord::int AS ord, m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at, m.edited_at, m.deleted_at, m.version, m.reactions
FROM unnest(@conversation_ids::bigint[]) WITH ORDINALITY AS k(conversation_id, ord)
JOIN conversations c ON c.id = k.conversation_id
CROSS JOIN LATERAL (
    SELECT mm.*
    FROM messages mm
    WHERE mm.conversation_id = c.id
      AND mm.seq <= c.last_seq - (@offsets::int[])[k.ord]
      AND mm.seq < (@befores::bigint[])[k.ord]
    ORDER BY mm.seq DESC
    LIMIT (@limits::int[])[k.ord] + 1
) m
JOIN users u ON u.id = m.sender_id
ORDER BY k.ord, m.seq DESC;

-- name: MessagesBefore :many
-- The newest messages of a conversation with seq below before_seq, newest first (a timeline
-- page between two cursors). The range is limited before the senders are joined, as in
-- MessagesAfter.
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at, m.edited_at, m.deleted_at, m.version, m.reactions
FROM (SELECT mm.id, mm.conversation_id, mm.seq, mm.sender_id, mm.body, mm.client_message_id,
             mm.created_at, mm.edited_at, mm.deleted_at, mm.version, mm.reactions
      FROM messages mm
      WHERE mm.conversation_id = @conversation_id AND mm.seq < @before_seq
      ORDER BY mm.seq DESC
      LIMIT @row_limit) m
JOIN users u ON u.id = m.sender_id
ORDER BY m.seq DESC;

-- name: MessagesAfter :many
-- Messages committed after after_seq, oldest first: subscription replay and gap fill, and a
-- timeline page backward. The range is limited before the senders are joined, so that it is one
-- index range scan in seq order that stops at the limit, whatever the planner estimates of the
-- range: deep in a conversation far longer than the others, it took the range for a few rows,
-- joined all of it first and sorted it (5,000 rows read for a page of 51, 8.5 ms instead of
-- 0.2 ms, in make bench's timeline backward at depth 5000).
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at, m.edited_at, m.deleted_at, m.version, m.reactions
FROM (SELECT mm.id, mm.conversation_id, mm.seq, mm.sender_id, mm.body, mm.client_message_id,
             mm.created_at, mm.edited_at, mm.deleted_at, mm.version, mm.reactions
      FROM messages mm
      WHERE mm.conversation_id = @conversation_id AND mm.seq > @after_seq
      ORDER BY mm.seq
      LIMIT @row_limit) m
JOIN users u ON u.id = m.sender_id
ORDER BY m.seq;

-- name: MessagesAround :many
-- A window around seq: up to older_limit messages with seq <= seq (the message itself and
-- those before it, newest first) and up to newer_limit with seq > seq (oldest first), in one
-- statement of two range scans of the (conversation_id, seq) index, whatever the depth of seq.
-- The caller asks one row more on each side than it shows, to tell whether more lie beyond.
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at, m.edited_at, m.deleted_at, m.version, m.reactions
FROM (
    (SELECT o.* FROM messages o
     WHERE o.conversation_id = @conversation_id AND o.seq <= @seq
     ORDER BY o.seq DESC
     LIMIT @older_limit)
    UNION ALL
    (SELECT n.* FROM messages n
     WHERE n.conversation_id = @conversation_id AND n.seq > @seq
     ORDER BY n.seq
     LIMIT @newer_limit)
) m
JOIN users u ON u.id = m.sender_id
ORDER BY m.seq DESC;

-- name: MessagesByID :many
-- The given messages as they are now, if they belong to one of the given conversations (the
-- caller has checked membership); rows come in any order.
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at, m.edited_at, m.deleted_at, m.version, m.reactions
FROM messages m
JOIN users u ON u.id = m.sender_id
WHERE m.id = ANY(@ids::bigint[]);

-- name: MessageByClientID :one
-- The message a sender sent with a client id, as it is now, the event_seq of its sending, and
-- the conversation's members now.
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at, m.edited_at, m.deleted_at, m.version, m.reactions,
       e.event_seq,
       (SELECT array_agg(x.user_id) FROM conversation_members x WHERE x.conversation_id = m.conversation_id)::bigint[] AS member_ids
FROM messages m
JOIN users u ON u.id = m.sender_id
JOIN conversation_events e ON e.conversation_id = m.conversation_id AND e.message_id = m.id AND e.kind = 'message_added'
WHERE m.conversation_id = @conversation_id AND m.sender_id = @sender_id
  AND m.client_message_id = @client_message_id::text;

-- name: MessageLocate :one
-- Which conversation a message belongs to, if the user is a member of it: the first step of a
-- change to a message (the conversation's row lock is taken next). No row: no such message, or
-- the user is not a member.
SELECT m.conversation_id, m.sender_id
FROM messages m
JOIN conversation_members cm ON cm.conversation_id = m.conversation_id AND cm.user_id = @user_id
WHERE m.id = @id;

-- name: MessageEdit :one
-- Replaces the body of a message that is not deleted, under the conversation's row lock.
UPDATE messages SET body = @body, edited_at = now(), version = version + 1
WHERE conversation_id = @conversation_id AND id = @id AND deleted_at IS NULL
RETURNING id;

-- name: MessageDelete :one
-- Makes a message a tombstone: no body, no reactions; its seq stays.
UPDATE messages SET body = '', reactions = '[]', deleted_at = now(), version = version + 1
WHERE conversation_id = @conversation_id AND id = @id AND deleted_at IS NULL
RETURNING id;

-- name: MessageState :one
-- A message's sender and whether it is deleted, read under the conversation's row lock.
SELECT sender_id, (deleted_at IS NOT NULL)::boolean AS deleted,
       jsonb_array_length(reactions)::int AS distinct_reactions
FROM messages
WHERE conversation_id = @conversation_id AND id = @id;
