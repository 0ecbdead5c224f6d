#!/bin/sh
# PgBouncer for docker-compose.yml: renders pgbouncer.ini (whose settings the private stack of
# `make run` and the tests shares: ops/pgbouncer's tests check both), writes the userlist, and
# runs PgBouncer in the foreground.
#
# Environment: PG_HOST, PG_PORT (default 5432), LISTEN_PORT (default 6432), PGBOUNCER_USER and
# PGBOUNCER_PASSWORD (the PostgreSQL role PgBouncer logs in as; also the admin and stats user),
# PGBOUNCER_TEMPLATE (default /opt/threadline/pgbouncer.ini), PGBOUNCER_DIR (where the rendered
# files go, default /tmp/pgbouncer), PGBOUNCER_BIN (default pgbouncer).
set -eu

: "${PG_HOST:?PG_HOST is required}"
: "${PGBOUNCER_USER:?PGBOUNCER_USER is required}"
: "${PGBOUNCER_PASSWORD:?PGBOUNCER_PASSWORD is required}"
template=${PGBOUNCER_TEMPLATE:-/opt/threadline/pgbouncer.ini}
dir=${PGBOUNCER_DIR:-/tmp/pgbouncer}

mkdir -p "$dir"
umask 077
# The userlist holds the password itself: PgBouncer needs it for SCRAM with PostgreSQL.
printf '"%s" "%s"\n' "$PGBOUNCER_USER" "$PGBOUNCER_PASSWORD" >"$dir/userlist.txt"
sed \
	-e 's|\${LISTEN_ADDR}|0.0.0.0|g' \
	-e 's|\${LISTEN_PORT}|'"${LISTEN_PORT:-6432}"'|g' \
	-e 's|\${PG_HOST}|'"$PG_HOST"'|g' \
	-e 's|\${PG_PORT}|'"${PG_PORT:-5432}"'|g' \
	-e 's|\${AUTH_FILE}|'"$dir/userlist.txt"'|g' \
	-e 's|\${ADMIN_USER}|'"$PGBOUNCER_USER"'|g' \
	"$template" >"$dir/pgbouncer.ini"
if grep -v '^[[:space:]]*[;#]' "$dir/pgbouncer.ini" | grep -q '\${'; then
	echo "pgbouncer: $template has a placeholder this script does not fill in:" >&2
	grep -v '^[[:space:]]*[;#]' "$dir/pgbouncer.ini" | grep '\${' >&2
	exit 1
fi
exec "${PGBOUNCER_BIN:-pgbouncer}" "$dir/pgbouncer.ini"
