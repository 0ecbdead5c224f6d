-- name: ReactionInsert :execrows
-- A user's reaction; nothing when it is there already (reactions are idempotent).
INSERT INTO reactions (conversation_id, message_id, user_id, emoji)
VALUES (@conversation_id, @message_id, @user_id, @emoji)
ON CONFLICT DO NOTHING;

-- name: ReactionDelete :execrows
DELETE FROM reactions
WHERE conversation_id = @conversation_id AND message_id = @message_id AND user_id = @user_id AND emoji = @emoji;

-- name: ReactionsDeleteForMessage :exec
DELETE FROM reactions WHERE conversation_id = @conversation_id AND message_id = @message_id;

-- name: ReactionsSummarize :exec
-- Stores a message's reactions grouped by emoji, most used first (then the emoji that came
-- first), in messages.reactions, which pages of history read.
UPDATE messages m SET reactions = coalesce((
    SELECT jsonb_agg(jsonb_build_object('emoji', r.emoji, 'count', r.n) ORDER BY r.n DESC, r.first, r.emoji)
    FROM (SELECT rr.emoji, count(*) AS n, min(rr.created_at) AS first
          FROM reactions rr
          WHERE rr.conversation_id = @conversation_id AND rr.message_id = @message_id
          GROUP BY rr.emoji) r
), '[]')
WHERE m.conversation_id = @conversation_id AND m.id = @message_id;

-- name: ReactionHasEmoji :one
-- Whether the message already has a reaction with this emoji (from anyone).
SELECT EXISTS (SELECT 1 FROM reactions
               WHERE conversation_id = @conversation_id AND message_id = @message_id AND emoji = @emoji);

-- name: ReactionsOfUser :many
-- The reactions a user gave to the given messages, for viewerReacted.
SELECT message_id, emoji
FROM reactions
WHERE message_id = ANY(@message_ids::bigint[]) AND conversation_id = ANY(@conversation_ids::bigint[])
  AND user_id = @user_id;
