-- name: MessagesSearch :many
-- Full-text search: the newest messages matching the query (websearch syntax, 'simple'
-- configuration) in the conversations the viewer is a member of now (or in one of them), newest
-- first by (created_at, id), after the cursor. Tombstones never match: their tsv is empty, and
-- deleted_at is checked too. A query with no word to look for (only punctuation, or words only
-- excluded: querytree is empty or 'T') matches nothing rather than everything.
--
-- Two strategies, of which exactly one runs (the other's one-time filter is false):
--
-- - walk, for a query that is one word or words joined by OR, one of which is in at least 5% of
--   messages by the tsv column's statistics: each conversation is read newest first
--   (messages_conversation_time_idx) until it has row_limit matches, a few rows per match, and
--   the newest row_limit of all are the page (the top of a union is the top of the tops);
-- - look up, for every other query: the GIN index (messages_tsv_idx) is read once for the
--   query's words, for all the viewer's conversations at once, and the matches sorted.
--
-- The planner cannot make this choice: the two are different plan shapes, and it prices a GIN
-- scan repeated for each conversation of a nested loop far below its cost (see README.md,
-- "Search"). Either strategy is exact; the choice only decides the cost. The index is read for
-- querytree's words only (what must be present), the whole query checked on each row, so that
-- an excluded common word (-word) costs nothing. The query is repeated rather than named in a
-- CTE so that the planner sees a constant and estimates its words from the statistics.
--
-- marked is the whole body with each matching word between \x01 and \x02 (characters a
-- message body never holds: see chat.MatchStart), computed for the page's rows only; the
-- snippet is cut from it in Go.
WITH strategy AS MATERIALIZED (
    SELECT coalesce(bool_or((s.most_common_elem_freqs::real[])[st.n] >= 0.05), false) AS walk
    FROM pg_catalog.pg_stats s
    CROSS JOIN unnest(s.most_common_elems::text::text[]) WITH ORDINALITY AS st (lexeme, n)
    WHERE s.schemaname = current_schema() AND s.tablename = 'messages' AND s.attname = 'tsv'
      -- one word, or words joined by OR: no &, <-> or ! outside the quoted words
      AND regexp_replace(websearch_to_tsquery('simple', @query::text)::text, '''(?:[^'']|'''')*''', '', 'g') !~ '[&<!]'
      AND st.lexeme = ANY (tsvector_to_array(to_tsvector('simple', querytree(websearch_to_tsquery('simple', @query::text)))))
)
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at, m.edited_at, m.deleted_at, m.version, m.reactions,
       ts_headline('simple', m.body, websearch_to_tsquery('simple', @query::text),
                   E'StartSel=\x01, StopSel=\x02, HighlightAll=true')::text AS marked
FROM (
    -- walk
    SELECT hit.*
    FROM conversation_members cm
    CROSS JOIN LATERAL (
        SELECT mm.id, mm.conversation_id, mm.seq, mm.sender_id, mm.body, mm.client_message_id,
               mm.created_at, mm.edited_at, mm.deleted_at, mm.version, mm.reactions
        FROM messages mm
        WHERE mm.conversation_id = cm.conversation_id
          AND ts_match_vq(mm.tsv, websearch_to_tsquery('simple', @query::text)) -- never the GIN index
          AND mm.deleted_at IS NULL
          AND (NOT @has_cursor::boolean
               OR (mm.created_at, mm.id) < (@after_time::timestamptz, @after_id::bigint))
        ORDER BY mm.created_at DESC, mm.id DESC
        LIMIT @row_limit
    ) hit
    WHERE cm.user_id = @viewer_id
      AND (@conversation_id::bigint = 0 OR cm.conversation_id = @conversation_id::bigint)
      AND querytree(websearch_to_tsquery('simple', @query::text)) NOT IN ('', 'T')
      AND (SELECT walk FROM strategy)
    UNION ALL
    -- look up
    SELECT mm.id, mm.conversation_id, mm.seq, mm.sender_id, mm.body, mm.client_message_id,
           mm.created_at, mm.edited_at, mm.deleted_at, mm.version, mm.reactions
    FROM messages mm
    WHERE mm.conversation_id = ANY (ARRAY(
              SELECT cm.conversation_id FROM conversation_members cm
              WHERE cm.user_id = @viewer_id
                AND (@conversation_id::bigint = 0 OR cm.conversation_id = @conversation_id::bigint)))
      AND mm.tsv @@ querytree(websearch_to_tsquery('simple', @query::text))::tsquery
      AND ts_match_vq(mm.tsv, websearch_to_tsquery('simple', @query::text))
      AND mm.deleted_at IS NULL
      AND (NOT @has_cursor::boolean
           OR (mm.created_at, mm.id) < (@after_time::timestamptz, @after_id::bigint))
      AND querytree(websearch_to_tsquery('simple', @query::text)) NOT IN ('', 'T')
      AND NOT (SELECT walk FROM strategy)
    ORDER BY created_at DESC, id DESC
    LIMIT @row_limit
) m
JOIN users u ON u.id = m.sender_id
ORDER BY m.created_at DESC, m.id DESC;
