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
