-- name: MessagesSearch :many
-- Full-text search: the newest messages matching the query (websearch syntax, 'simple'
-- configuration) in the conversations the viewer is a member of now (or in one of them), newest
-- first by (created_at, id), after the cursor. Tombstones never match: their tsv is empty, and
-- deleted_at is checked too. A query with no word to look for (only punctuation, or words only
-- excluded: querytree is empty or 'T') matches nothing rather than everything.
--
-- Two strategies; the page comes from exactly one:
--
-- - walk, tried when the words the query requires (querytree: an excluded word is not) are
--   likely in at least 2.5% of all messages by the tsv column's statistics: one word, or words
--   joined by OR, one of which is; or words joined by AND or in a phrase whose frequencies
--   multiply to it (as if independent: a phrase is rarer, and a walk that finds too few matches
--   costs its rows and then the look-up). The newest messages of each
--   conversation are read (messages_conversation_time_idx), about 1,280 rows in all shared
--   among the conversations (at least 16 each), and the matches among them kept. The page is
--   the newest row_limit of those, and it is exact when no conversation whose window was full
--   could hold an unread match newer than the page's last: every such window ends before it
--   (or every window held its conversation's remaining messages). Global statistics can be
--   wrong about a viewer's conversations (the word may be common elsewhere), so the walk is
--   bounded and checked, never trusted.
-- - look up, when the walk was not tried or not exact: the GIN index (messages_tsv_idx) is
--   read once for the words the query needs (querytree: an excluded word costs nothing), for
--   all the viewer's conversations at once, and the matches sorted; each row is checked
--   against the whole query.
--
-- The planner cannot make this choice: the two are different plan shapes, and it prices a GIN
-- scan repeated for each conversation of a nested loop far below its cost (see README.md,
-- "Search"). The query is repeated rather than named in a CTE so that the planner sees a
-- constant and estimates its words from the statistics.
--
-- marked is the whole body with each matching word between \x01 and \x02 (characters a
-- message body never holds: see chat.MatchStart), computed for the page's rows only; the
-- snippet is cut from it in Go.
WITH common AS MATERIALIZED (
    SELECT coalesce(CASE
               -- one word, or words joined by OR: no & or <-> outside the quoted words
               WHEN q.ops !~ '[&<]' THEN bool_or(f.freq >= 0.025)
               -- words joined by AND or in phrases, no OR: every word listed, the product
               WHEN q.ops !~ '[|]' THEN count(f.freq) = cardinality(q.lexemes) AND sum(ln(f.freq)) >= ln(0.025)
           END, false) AS yes
    FROM (
        SELECT regexp_replace(querytree(websearch_to_tsquery('simple', @query::text)), '''(?:[^'']|'''')*''', '', 'g') AS ops,
               tsvector_to_array(to_tsvector('simple', querytree(websearch_to_tsquery('simple', @query::text)))) AS lexemes
    ) q
    LEFT JOIN LATERAL (
        SELECT (s.most_common_elem_freqs::real[])[st.n]::float8 AS freq
        FROM pg_catalog.pg_stats s
        CROSS JOIN unnest(s.most_common_elems::text::text[]) WITH ORDINALITY AS st (lexeme, n)
        WHERE s.schemaname = current_schema() AND s.tablename = 'messages' AND s.attname = 'tsv'
          AND st.lexeme = ANY (q.lexemes)
    ) f ON true
    GROUP BY q.ops, q.lexemes
),
searched AS MATERIALIZED (
    SELECT cm.conversation_id
    FROM conversation_members cm
    WHERE cm.user_id = @viewer_id
      AND (@conversation_id::bigint = 0 OR cm.conversation_id = @conversation_id::bigint)
      AND querytree(websearch_to_tsquery('simple', @query::text)) NOT IN ('', 'T')
),
budget AS MATERIALIZED (
    SELECT greatest(16, 1280 / greatest(count(*), 1))::int AS rows_each FROM searched
),
walked AS MATERIALIZED (
    SELECT w.id, w.created_at, w.hit, w.pos, w.rows_read
    FROM searched c
    CROSS JOIN LATERAL (
        SELECT r.id, r.created_at, r.hit,
               row_number() OVER (ORDER BY r.created_at DESC, r.id DESC) AS pos,
               count(*) OVER () AS rows_read
        FROM (
            SELECT mm.id, mm.created_at,
                   mm.deleted_at IS NULL AND ts_match_vq(mm.tsv, websearch_to_tsquery('simple', @query::text)) AS hit
            FROM messages mm
            WHERE mm.conversation_id = c.conversation_id
              AND (NOT @has_cursor::boolean
                   OR (mm.created_at, mm.id) < (@after_time::timestamptz, @after_id::bigint))
            ORDER BY mm.created_at DESC, mm.id DESC
            LIMIT (SELECT rows_each FROM budget)
        ) r
    ) w
    WHERE (SELECT yes FROM common)
),
walk_page AS MATERIALIZED (
    SELECT id, created_at FROM walked WHERE hit ORDER BY created_at DESC, id DESC LIMIT @row_limit
),
walk_exact AS MATERIALIZED (
    SELECT (SELECT yes FROM common) AND NOT EXISTS (
        SELECT 1 FROM walked w
        WHERE w.rows_read = (SELECT rows_each FROM budget) AND w.pos = w.rows_read -- a full window's last row
          AND ((SELECT count(*) FROM walk_page) < @row_limit
               OR (w.created_at, w.id) > (SELECT p.created_at, p.id FROM walk_page p ORDER BY p.created_at, p.id LIMIT 1))
    ) AS yes
)
SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name,
       m.body, m.client_message_id, m.created_at, m.edited_at, m.deleted_at, m.version, m.reactions,
       ts_headline('simple', m.body, websearch_to_tsquery('simple', @query::text),
                   E'StartSel=\x01, StopSel=\x02, HighlightAll=true')::text AS marked
FROM (
    -- the walk's page
    SELECT mm.id, mm.conversation_id, mm.seq, mm.sender_id, mm.body, mm.client_message_id,
           mm.created_at, mm.edited_at, mm.deleted_at, mm.version, mm.reactions
    FROM messages mm
    WHERE mm.id IN (SELECT id FROM walk_page)
      AND (SELECT yes FROM walk_exact)
    UNION ALL
    -- look up
    SELECT mm.id, mm.conversation_id, mm.seq, mm.sender_id, mm.body, mm.client_message_id,
           mm.created_at, mm.edited_at, mm.deleted_at, mm.version, mm.reactions
    FROM messages mm
    WHERE mm.conversation_id = ANY (ARRAY(SELECT conversation_id FROM searched))
      AND mm.tsv @@ querytree(websearch_to_tsquery('simple', @query::text))::tsquery
      AND ts_match_vq(mm.tsv, websearch_to_tsquery('simple', @query::text))
      AND mm.deleted_at IS NULL
      AND (NOT @has_cursor::boolean
           OR (mm.created_at, mm.id) < (@after_time::timestamptz, @after_id::bigint))
      AND querytree(websearch_to_tsquery('simple', @query::text)) NOT IN ('', 'T')
      AND NOT (SELECT yes FROM walk_exact)
    ORDER BY created_at DESC, id DESC
    LIMIT @row_limit
) m
JOIN users u ON u.id = m.sender_id
ORDER BY m.created_at DESC, m.id DESC;
