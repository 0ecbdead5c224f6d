#!/bin/sh
# Installs what the local stack (go run ./ops/stack up), make run-cluster and the
# tests need: PostgreSQL (15 on Debian 12), PgBouncer, Redis and nginx, with
# apt-get, on Debian or Ubuntu. Does nothing, quickly, when everything is present, so `make run` and
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
have_binary nginx || missing="$missing nginx"

if [ -z "$missing" ]; then
	exit 0
fi

echo "install-deps: missing:$missing; installing them with apt-get" >&2
. "$(dirname "$0")/../apt-install.sh"
# shellcheck disable=SC2086 # $missing is a list of package names
apt_install install-deps "install PostgreSQL 15, PgBouncer, Redis 7 and nginx with your package manager" \
	$missing
# Where systemd runs, the nginx package starts a system nginx on :80; the cluster runs its own.
case "$missing" in *nginx*)
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 &&
		systemctl is-enabled nginx >/dev/null 2>&1; then
		echo "install-deps: stopping and disabling the system service nginx that its package started" >&2
		$sudo systemctl disable --now nginx || true
	fi
	;;
esac
