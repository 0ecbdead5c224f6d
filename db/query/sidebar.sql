-- name: ConversationForMembers :many
-- A conversation as each of the given users sees it, in one statement for all of them (the
-- sidebar's events, one per subscriber of the conversation on an instance): one row per user
-- who is a member, with their read position and unread count (counted as UnreadCounts does);
-- the others, and all when the conversation is missing, have no row. Every row is read in the
-- statement's one snapshot, so the conversation's columns are the same in each.
SELECT c.id, c.title, c.created_at, c.last_seq, c.last_message_at, c.last_event_seq,
       m.user_id, m.last_read_seq,
       (SELECT count(*) FROM messages u
        WHERE u.conversation_id = m.conversation_id AND u.seq > m.last_read_seq AND u.deleted_at IS NULL
          AND u.sender_id <> m.user_id)::bigint AS unread
FROM conversations c
JOIN conversation_members m ON m.conversation_id = c.id
WHERE c.id = @conversation_id AND m.user_id = ANY(@user_ids::bigint[]);

-- name: UserStreamStart :many
-- Where a sidebar stream of the user starting now begins, in one statement, hence one snapshot:
-- the event_seq of the user's newest event and of the oldest one kept (0: none kept), repeated
-- on one row per conversation they are a member of, with the event_seq of its newest event
-- (one row with no conversation when they are in none; no row when the user does not exist).
SELECT u.last_event_seq,
       coalesce((SELECT min(e.event_seq) FROM user_events e WHERE e.user_id = u.id), 0)::bigint AS first_kept,
       m.conversation_id, c.last_event_seq AS conversation_last_event_seq
FROM users u
LEFT JOIN conversation_members m ON m.user_id = u.id
LEFT JOIN conversations c ON c.id = m.conversation_id
WHERE u.id = @id;
