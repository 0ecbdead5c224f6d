-- name: ConversationsByIDForMember :many
-- The given conversations that the user is a member of; the others are left out, so a
-- non-member sees exactly what a stranger to a missing conversation sees.
SELECT c.id, c.title, c.created_at, c.last_seq, c.last_message_at
FROM conversations c
JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = @user_id
WHERE c.id = ANY(@ids::bigint[]);

-- name: ConversationListByMember :many
-- A user's conversations, latest activity first, keyset-paginated on (last_message_at, id).
SELECT c.id, c.title, c.created_at, c.last_seq, c.last_message_at
FROM conversation_members m
JOIN conversations c ON c.id = m.conversation_id
WHERE m.user_id = @user_id
  AND (NOT @has_cursor::boolean
       OR (c.last_message_at, c.id) < (@after_time::timestamptz, @after_id::bigint))
ORDER BY c.last_message_at DESC, c.id DESC
LIMIT @row_limit;

-- name: ConversationInsert :one
INSERT INTO conversations (title, created_by)
VALUES (@title, @created_by)
RETURNING id, title, created_at, last_seq, last_message_at;

-- name: ConversationBumpSeq :one
-- Takes the next seq of a conversation the sender is a member of, under the row lock that
-- serialises writers of the conversation. No row: not found, or not a member.
UPDATE conversations c
SET last_seq = c.last_seq + 1, last_message_at = now()
WHERE c.id = @id
  AND EXISTS (SELECT 1 FROM conversation_members m
              WHERE m.conversation_id = c.id AND m.user_id = @sender_id)
RETURNING c.last_seq, c.last_message_at;
