-- name: MessagePages :many
-- Pages of several conversations in one statement, newest first. Each key is
-- (conversation, limit, offset); a page reads limit+1 rows so that the caller can tell whether
-- more follow. Since seq runs 1..last_seq without holes, offset o is the seq range
-- seq <= last_seq - o: an index range scan whatever the depth.
SELECT k.ord::int AS ord, m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at
FROM unnest(@conversation_ids::bigint[]) WITH ORDINALITY AS k(conversation_id, ord)
JOIN conversations c ON c.id = k.conversation_id
CROSS JOIN LATERAL (
    SELECT mm.*
    FROM messages mm
    WHERE mm.conversation_id = c.id
      AND mm.seq <= c.last_seq - (@offsets::int[])[k.ord]
    ORDER BY mm.seq DESC
    LIMIT (@limits::int[])[k.ord] + 1
) m
JOIN users u ON u.id = m.sender_id
ORDER BY k.ord, m.seq DESC;

-- name: MessagesBefore :many
-- A history page: the newest messages of a conversation with seq below before_seq.
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at
FROM messages m
JOIN users u ON u.id = m.sender_id
WHERE m.conversation_id = @conversation_id AND m.seq < @before_seq
ORDER BY m.seq DESC
LIMIT @row_limit;

-- name: MessagesAfter :many
-- Messages committed after after_seq, oldest first: subscription replay and gap fill.
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at
FROM messages m
JOIN users u ON u.id = m.sender_id
WHERE m.conversation_id = @conversation_id AND m.seq > @after_seq
ORDER BY m.seq
LIMIT @row_limit;

-- name: MessageByClientID :one
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at
FROM messages m
JOIN users u ON u.id = m.sender_id
WHERE m.conversation_id = @conversation_id AND m.sender_id = @sender_id
  AND m.client_message_id = @client_message_id::text;

-- name: MessageInsert :one
-- Inserts a message at a seq taken by ConversationBumpSeq in the same transaction. A repeated
-- client id inserts nothing and returns no row; the caller rolls back and reads the original.
WITH inserted AS (
    INSERT INTO messages (conversation_id, seq, sender_id, body, client_message_id, created_at)
    VALUES (@conversation_id, @seq, @sender_id, @body, sqlc.narg(client_message_id), @created_at)
    ON CONFLICT (conversation_id, sender_id, client_message_id) DO NOTHING
    RETURNING *
)
SELECT i.id, i.conversation_id, i.seq, i.sender_id, u.name AS sender_name,
       i.body, i.client_message_id, i.created_at
FROM inserted i
JOIN users u ON u.id = i.sender_id;
