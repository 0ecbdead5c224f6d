#!/usr/bin/env bash
# make run: serve Threadline on a local stack.
#
# With DATABASE_URL and REDIS_URL set, uses those services (DATABASE_DIRECT_URL too, for
# migrations and seeding). Otherwise installs what is missing, starts a private PostgreSQL,
# PgBouncer and Redis under .data/ (ports from STACK_PG_PORT, STACK_PGBOUNCER_PORT,
# STACK_REDIS_PORT), and writes their URLs to .data/stack.env.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-.data}

if [[ -n "${DATABASE_URL:-}" && -n "${REDIS_URL:-}" ]]; then
  echo "run: using DATABASE_URL and REDIS_URL from the environment"
  if [[ -z "${DATABASE_DIRECT_URL:-}" ]]; then
    echo "run: DATABASE_DIRECT_URL is not set: migrations and seeding need a direct PostgreSQL URL" >&2
    exit 1
  fi
else
  ops/stack/install-deps.sh
  go run ./ops/stack up -dir "$data"
  set -a
  # shellcheck disable=SC1090,SC1091
  . "$data/stack.env"
  set +a
fi

export APP_ENV=${APP_ENV:-development}
# In development the server listens on 127.0.0.1:8080 unless ADDR says otherwise: its JWT secret
# is public.
bin/threadline migrate
bin/threadline seed
echo "run: demo token (user 1): $(bin/threadline token -user 1)"
exec bin/threadline serve
