-- name: MembersByConversations :many
SELECT m.conversation_id, u.id, u.name
FROM conversation_members m
JOIN users u ON u.id = m.user_id
WHERE m.conversation_id = ANY(@conversation_ids::bigint[])
ORDER BY m.conversation_id, u.id;

-- name: MembersInsert :exec
INSERT INTO conversation_members (conversation_id, user_id)
SELECT @conversation_id, unnest(@user_ids::bigint[])
ON CONFLICT DO NOTHING;
