#!/bin/sh
# Installs what the local stack (go run ./ops/stack up) and the tests need:
# PostgreSQL (15 on Debian 12), PgBouncer and Redis, with apt-get, on Debian or
# Ubuntu. Does nothing, quickly, when everything is present, so `make run` and
# `make test` call it every time. Uses sudo when not run as root.
#
# It starts nothing itself: the stack runs its own private servers under .data/
# on their own ports, whatever the packages' system services do.
set -eu

missing=""

have_binary() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ] ||
		[ -x "/usr/local/bin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}

have_initdb=no
for f in /usr/lib/postgresql/*/bin/initdb; do
	if [ -x "$f" ]; then have_initdb=yes; fi
done
[ "$have_initdb" = yes ] || missing="$missing postgresql"
have_binary pgbouncer || missing="$missing pgbouncer"
{ have_binary redis-server && have_binary redis-cli; } || missing="$missing redis-server"

if [ -z "$missing" ]; then
	exit 0
fi

echo "install-deps: missing:$missing; installing postgresql pgbouncer redis-server with apt-get" >&2
. "$(dirname "$0")/../apt-install.sh"
apt_install install-deps "install PostgreSQL 15, PgBouncer and Redis 7 with your package manager" \
	postgresql pgbouncer redis-server
