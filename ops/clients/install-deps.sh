#!/bin/sh
# make client-deps: installs what the client checks of make test need, with apt-get, when it is
# missing: Chromium (the browser tests: GraphiQL's, TestPlaygroundInBrowser, EventSource's,
# TestEventSourceInBrowser, and the web app's, TestWebApp), a color emoji font (the web app's
# reactions in its screenshots), and Node.js with npm (make check-ts, make check-web, and the
# TypeScript and graphql-sse clients' tests). Does nothing, quickly, when all are present. Uses
# sudo when not root.
set -eu

missing=""
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing="$missing fonts-noto-color-emoji"
if [ -z "$missing" ]; then
	exit 0
fi

echo "client-deps: installing$missing with apt-get" >&2
. "$(dirname "$0")/../apt-install.sh"
# shellcheck disable=SC2086 # $missing is a list of package names
apt_install client-deps "install$missing with your package manager" $missing
