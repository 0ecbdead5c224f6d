#!/bin/sh
# make client-deps: installs what the client checks of make test need, with apt-get, when it is
# missing: Chromium (the browser tests: GraphiQL's, TestPlaygroundInBrowser, and EventSource's,
# TestEventSourceInBrowser) and Node.js with npm (make check-ts, and the TypeScript and
# graphql-sse clients' tests). Does nothing, quickly, when both are present. Uses sudo when not
# root.
set -eu

missing=""
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -z "$missing" ]; then
	exit 0
fi

echo "client-deps: installing$missing with apt-get" >&2
. "$(dirname "$0")/../apt-install.sh"
# shellcheck disable=SC2086 # $missing is a list of package names
apt_install client-deps "install$missing with your package manager" $missing
