#!/bin/sh
# make client-deps: installs what the client checks of make test need, with apt-get, when it is
# missing: Chromium (the GraphiQL browser test, TestPlaygroundInBrowser) and Node.js with npm
# (make check-ts). Does nothing, quickly, when both are present. Uses sudo when not root.
set -eu

missing=""
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -z "$missing" ]; then
	exit 0
fi

echo "client-deps: installing$missing with apt-get" >&2
if ! command -v apt-get >/dev/null 2>&1; then
	echo "client-deps: apt-get not found; install$missing with your package manager" >&2
	exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "client-deps: not root and sudo not found; as root run: apt-get install$missing" >&2
		exit 1
	fi
	sudo="sudo"
fi
$sudo apt-get update
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
