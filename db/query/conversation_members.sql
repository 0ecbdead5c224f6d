-- name: MembershipsByConversations :many
-- The members of each conversation, with their role, since when, and their read position,
-- ordered by user id.
SELECT m.conversation_id, u.id, u.name, m.role, m.joined_at, m.last_read_seq, m.read_at
FROM conversation_members m
JOIN users u ON u.id = m.user_id
WHERE m.conversation_id = ANY(@conversation_ids::bigint[])
ORDER BY m.conversation_id, u.id;

-- name: MembersInsert :many
-- Adds the users as members (owner_id as the owner); existing members are left as they are.
-- Returns the users added, with their names, in the order given.
WITH added AS (
    INSERT INTO conversation_members (conversation_id, user_id, role)
    SELECT @conversation_id, uid, CASE WHEN uid = @owner_id::bigint THEN 'owner' ELSE 'member' END
    FROM unnest(@user_ids::bigint[]) AS uid
    ON CONFLICT DO NOTHING
    RETURNING user_id
)
SELECT u.id, u.name
FROM added a
JOIN users u ON u.id = a.user_id
ORDER BY array_position(@user_ids::bigint[], u.id);

-- name: MemberRole :one
-- A member's role; no row when the user is not a member.
SELECT role FROM conversation_members WHERE conversation_id = @conversation_id AND user_id = @user_id;

-- name: MemberDelete :execrows
DELETE FROM conversation_members WHERE conversation_id = @conversation_id AND user_id = @user_id;

-- name: MemberLongestStanding :one
-- The member who joined first (the lowest user id among those who joined at once): who
-- becomes the owner when the owner leaves. No row: nobody is left.
SELECT user_id FROM conversation_members
WHERE conversation_id = @conversation_id
ORDER BY joined_at, user_id
LIMIT 1;

-- name: MemberMakeOwner :exec
UPDATE conversation_members SET role = 'owner' WHERE conversation_id = @conversation_id AND user_id = @user_id;

-- name: MemberMarkRead :one
-- Moves a member's read position forward to seq when seq is ahead of it and not past the
-- conversation's last message. It does not take the conversation's row lock: reading never
-- waits for writers. No row: not a member, seq past the last message, or not ahead
-- (MemberReadState tells which).
UPDATE conversation_members m SET last_read_seq = @seq, read_at = now()
FROM conversations c
WHERE m.conversation_id = @conversation_id AND m.user_id = @user_id AND c.id = m.conversation_id
  AND m.last_read_seq < @seq AND @seq <= c.last_seq
RETURNING m.read_at::timestamptz AS read_at;

-- name: MemberReadState :one
-- A member's read position and the conversation's last seq. No row: not a member.
SELECT m.last_read_seq, c.last_seq
FROM conversation_members m
JOIN conversations c ON c.id = m.conversation_id
WHERE m.conversation_id = @conversation_id AND m.user_id = @user_id;
