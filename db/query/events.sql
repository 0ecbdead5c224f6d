-- name: EventInsert :exec
-- An event other than message_added (MessageInsert writes those), at an event_seq taken by
-- ConversationBumpEvent in the same transaction.
INSERT INTO conversation_events (conversation_id, event_seq, kind, actor_id, at, message_id, emoji, added, title, user_ids)
VALUES (@conversation_id, @event_seq, @kind, @actor_id, @at, sqlc.narg(message_id), sqlc.narg(emoji), sqlc.narg(added),
        sqlc.narg(title), sqlc.narg(user_ids)::bigint[]);

-- name: EventsAfter :many
-- A conversation's events after after_seq, oldest first, with what they name as it is now: the
-- actor, the message (and its sender), the users. The range is limited before the joins, as in
-- MessagesAfter.
SELECT e.event_seq, e.kind, e.actor_id, a.name AS actor_name, e.at, e.emoji, e.added, e.title,
       coalesce(e.user_ids, '{}')::bigint[] AS user_ids,
       coalesce((SELECT array_agg(u.name ORDER BY x.ord) FROM unnest(e.user_ids) WITH ORDINALITY x(id, ord)
                 JOIN users u ON u.id = x.id), '{}')::text[] AS user_names,
       m.id AS message_id, m.seq, m.sender_id, s.name AS sender_name, m.body, m.client_message_id,
       m.created_at, m.edited_at, m.deleted_at, m.version, m.reactions
FROM (SELECT ee.* FROM conversation_events ee
      WHERE ee.conversation_id = @conversation_id AND ee.event_seq > @after_seq
      ORDER BY ee.event_seq
      LIMIT @row_limit) e
JOIN users a ON a.id = e.actor_id
LEFT JOIN messages m ON m.conversation_id = e.conversation_id AND m.id = e.message_id
LEFT JOIN users s ON s.id = m.sender_id
ORDER BY e.event_seq;

-- name: StreamHeads :many
-- The newest event_seq of each conversation and of each user named, by primary key: what live
-- delivery's poll compares with what each instance's subscribers have been handed, one
-- statement for all of an instance's streams.
SELECT false AS is_user, c.id, c.last_event_seq FROM conversations c WHERE c.id = ANY(@conversation_ids::bigint[])
UNION ALL
SELECT true AS is_user, u.id, u.last_event_seq FROM users u WHERE u.id = ANY(@user_ids::bigint[]);
