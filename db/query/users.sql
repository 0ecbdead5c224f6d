-- name: UsersByIDs :many
-- Rows come back in any order; the caller puts them in key order.
SELECT id, name
FROM users
WHERE id = ANY(@ids::bigint[]);

-- name: UsersExist :one
-- How many of the given ids name real users (ids must be distinct).
SELECT count(*)::int AS n
FROM users
WHERE id = ANY(@ids::bigint[]);

-- name: UsersSearch :many
-- The directory: users whose name contains search (case-insensitive; "" for everyone), in
-- the order of their lower-case name then id, after the cursor (after_name, after_id).
-- users_name_trgm_idx serves the search, users_name_idx the order.
SELECT id, name, lower(name)::text AS sort_name
FROM users
WHERE (@search::text = '' OR lower(name) LIKE '%' || @search::text || '%')
  AND (NOT @has_cursor::boolean OR (lower(name), id) > (@after_name::text, @after_id::bigint))
ORDER BY lower(name), id
LIMIT @row_limit;
