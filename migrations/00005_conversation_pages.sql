-- +goose Up
-- The page of history with its conversation and the reader's membership (ConversationPagesForMember,
-- db/pages.go), as a function so that PostgreSQL plans it once per server connection.
--
-- Statements reach PostgreSQL through PgBouncer in transaction mode, without prepared statements
-- (db/db.go): a plain statement is parsed and planned on every call, and planning this one cost
-- about twice its execution. PL/pgSQL keeps the plan of each statement of a function for the
-- rest of the backend's life, whichever client's transaction PgBouncer lends the backend to:
-- nothing of it is session state a client could see or depend on.
--
-- The plan is generic (plan_cache_mode = force_generic_plan): under the default, PostgreSQL
-- would keep planning it per call, since the generic plan's estimate (ten keys for an array it
-- cannot see) always looks dearer than a custom plan's. The statement is shaped so that the
-- generic plan is the one a custom plan would be for any number of keys and any table size:
-- every step is a LATERAL subquery driven by one key at a time: the conversation and the
-- membership looked up by key (LIMIT 1 keeps the planner from flattening the subquery into a
-- hash join over the whole table), the page as one backward range scan of (conversation_id,
-- seq) joined to its senders by primary key (TestConversationPagesPlan).
--
-- Rows are as the statement's were: per key (ord, from 1, in the order of conversation_ids)
-- the conversation's row once per message of its page, newest first, at most limits[ord] + 1
-- messages (the extra one tells whether older ones follow), from seq last_seq - offsets[ord]
-- down; a conversation whose page is empty has one row with no message (id 0); a conversation
-- member_id is not a member of (or that is missing) has none.
-- +goose StatementBegin
CREATE FUNCTION conversation_pages_for_member(conversation_ids bigint[], member_id bigint, limits int[], offsets int[])
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
        ORDER BY mm.seq DESC
        LIMIT limits[k.ord] + 1
    ) m ON true
    ORDER BY k.ord, m.seq DESC;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION conversation_pages_for_member(bigint[], bigint, int[], int[]);
