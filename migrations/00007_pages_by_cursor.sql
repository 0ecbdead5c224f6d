-- +goose Up
-- Pages by cursor (history(before:)) in the one statement of the page with its conversation and
-- the reader's membership: conversation_pages_for_member as in
-- migrations/00005_conversation_pages.sql, with befores[ord], the bound seq < before of a page by
-- cursor (the largest bigint for an offset page). The two bounds, seq <= last_seq - offset and
-- seq < before, are one backward range scan of (conversation_id, seq) from the lower of them.
-- A page by cursor was two statements before, the conversation and then MessagesBefore.
--
-- This is a new function beside the four-argument one, which instances of the previous release
-- still call while a rolling deploy replaces them; a later migration drops it.
-- +goose StatementBegin
CREATE FUNCTION conversation_pages_for_member(conversation_ids bigint[], member_id bigint, limits int[], offsets int[], befores bigint[])
RETURNS TABLE (
    ord int, conv_id bigint, title text, conv_created_at timestamptz, last_seq bigint,
    last_message_at timestamptz, last_event_seq bigint, last_read_seq bigint,
    id bigint, seq bigint, sender_id bigint, sender_name text, body text, client_message_id text,
    created_at timestamptz, edited_at timestamptz, deleted_at timestamptz, version int, reactions jsonb)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    RETURN QUERY
    SELECT k.ord::int, c.id, c.title, c.created_at, c.last_seq,
           c.last_message_at, c.last_event_seq, c.last_read_seq,
           coalesce(m.id, 0)::bigint, coalesce(m.seq, 0)::bigint,
           coalesce(m.sender_id, 0)::bigint, coalesce(m.sender_name, '')::text,
           coalesce(m.body, '')::text, m.client_message_id,
           coalesce(m.created_at, c.created_at)::timestamptz, m.edited_at, m.deleted_at,
           coalesce(m.version, 1)::int, coalesce(m.reactions, '[]')::jsonb
    FROM unnest(conversation_ids) WITH ORDINALITY AS k(conversation_id, ord)
    CROSS JOIN LATERAL (
        SELECT cc.id, cc.title, cc.created_at, cc.last_seq, cc.last_message_at, cc.last_event_seq, mb.last_read_seq
        FROM conversations cc
        JOIN conversation_members mb ON mb.conversation_id = cc.id AND mb.user_id = member_id
        WHERE cc.id = k.conversation_id
        LIMIT 1
    ) c
    LEFT JOIN LATERAL (
        SELECT mm.id, mm.seq, mm.sender_id, u.name AS sender_name, mm.body, mm.client_message_id,
               mm.created_at, mm.edited_at, mm.deleted_at, mm.version, mm.reactions
        FROM messages mm
        JOIN users u ON u.id = mm.sender_id
        WHERE mm.conversation_id = c.id
          AND mm.seq <= c.last_seq - offsets[k.ord]
          AND mm.seq < befores[k.ord]
        ORDER BY mm.seq DESC
        LIMIT limits[k.ord] + 1
    ) m ON true
    ORDER BY k.ord, m.seq DESC;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION conversation_pages_for_member(bigint[], bigint, int[], int[], bigint[]);
