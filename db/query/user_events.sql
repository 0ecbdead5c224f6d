-- name: UserEventsAppend :many
-- Appends an event of one kind about one conversation for each of the users, each at the
-- user's next event_seq. The users' rows are locked in id order first, so that concurrent
-- appends for overlapping sets of users cannot deadlock; FOR NO KEY UPDATE (what the update of
-- a non-key column takes anyway) lets the foreign-key checks of other writers (FOR KEY SHARE on
-- the same users, taken in any order) through.
WITH locked AS (
    SELECT id FROM users WHERE id = ANY(@user_ids::bigint[]) ORDER BY id FOR NO KEY UPDATE
), bumped AS (
    UPDATE users u SET last_event_seq = u.last_event_seq + 1
    FROM locked l WHERE u.id = l.id
    RETURNING u.id, u.last_event_seq
)
INSERT INTO user_events (user_id, event_seq, kind, conversation_id, conversation_event_seq, read_seq, at)
SELECT b.id, b.last_event_seq, @kind, @conversation_id, sqlc.narg(conversation_event_seq)::bigint,
       sqlc.narg(read_seq)::bigint, @at
FROM bumped b
RETURNING user_id, event_seq;

-- name: UserEventsAfter :many
-- A user's events after after_seq, oldest first.
SELECT event_seq, kind, conversation_id, conversation_event_seq, read_seq, at
FROM user_events
WHERE user_id = @user_id AND event_seq > @after_seq
ORDER BY event_seq
LIMIT @row_limit;
