-- +goose Up
-- A send in one statement (MessageSend, db/send.go), as a function so that PostgreSQL plans it
-- once per server connection, for the reason migrations/00005_conversation_pages.sql gives:
-- through PgBouncer every plain statement is planned on every call, and planning this one cost
-- about 0.4 ms a send, about half of its execution (0.8 ms; pg_stat_statements with
-- track_planning, under the 95/5 mix of make bench).
--
-- The statement takes the conversation's next seq and event_seq under its row lock (which
-- serialises the conversation's writers), inserts the message and its message_added event at
-- them, and returns the message with the event's seq and the conversation's members (whose
-- conversation lists the message changes). No row: no such conversation, the sender is not a
-- member, or the sender already sent this client id (the caller reads the original); none of
-- these takes the lock or spends a seq. A concurrent send of the same client id that commits
-- first makes this one fail on messages_client_id_key (23505), which changes nothing.
--
-- Every step is found by key (the conversation and the membership by primary key, the client id
-- by messages_client_id_key), so the generic plan is the one a custom plan would be for any
-- arguments; plan_cache_mode = force_generic_plan keeps PostgreSQL from planning it per call
-- anyway. The output columns are named as the table's, hence #variable_conflict use_column.
-- +goose StatementBegin
CREATE FUNCTION message_send(p_conversation_id bigint, p_sender_id bigint, p_body text, p_client_message_id text)
RETURNS TABLE (
    id bigint, conversation_id bigint, seq bigint, sender_id bigint, sender_name text, body text,
    client_message_id text, created_at timestamptz, edited_at timestamptz, deleted_at timestamptz,
    version int, reactions jsonb, event_seq bigint, member_ids bigint[])
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH bump AS (
        UPDATE conversations c
        SET last_seq = c.last_seq + 1, last_event_seq = c.last_event_seq + 1, last_message_at = now()
        WHERE c.id = p_conversation_id
          AND EXISTS (SELECT 1 FROM conversation_members m
                      WHERE m.conversation_id = c.id AND m.user_id = p_sender_id)
          AND NOT EXISTS (SELECT 1 FROM messages d
                          WHERE d.conversation_id = c.id AND d.sender_id = p_sender_id
                            AND d.client_message_id = p_client_message_id)
        RETURNING c.id, c.last_seq, c.last_event_seq, c.last_message_at,
                  (SELECT array_agg(m.user_id) FROM conversation_members m WHERE m.conversation_id = c.id)::bigint[] AS member_ids
    ), inserted AS (
        INSERT INTO messages (conversation_id, seq, sender_id, body, client_message_id, created_at)
        SELECT b.id, b.last_seq, p_sender_id, p_body, p_client_message_id, b.last_message_at
        FROM bump b
        RETURNING *
    ), event AS (
        INSERT INTO conversation_events (conversation_id, event_seq, kind, actor_id, at, message_id)
        SELECT i.conversation_id, b.last_event_seq, 'message_added', i.sender_id, i.created_at, i.id
        FROM inserted i CROSS JOIN bump b
    )
    SELECT i.id, i.conversation_id, i.seq, i.sender_id, u.name,
           i.body, i.client_message_id, i.created_at, i.edited_at, i.deleted_at, i.version, i.reactions,
           b.last_event_seq, b.member_ids
    FROM inserted i
    CROSS JOIN bump b
    JOIN users u ON u.id = i.sender_id;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION message_send(bigint, bigint, text, text);
