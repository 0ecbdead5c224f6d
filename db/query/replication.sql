-- name: WALInsertPosition :one
-- Where the primary's write-ahead log ends now, in bytes from 0/0: read after a commit, at or
-- past that commit's record.
SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS position;

-- name: WALReplayPosition :one
-- How far a replica has replayed its primary's write-ahead log, in bytes from 0/0; -1 on a
-- server that is not in recovery (a primary, or a replica that was promoted).
SELECT coalesce((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, -1)::bigint AS position;
