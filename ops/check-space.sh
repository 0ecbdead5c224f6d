#!/bin/sh
# Usage: ops/check-space.sh WHAT GIB DIR...
#
# Fails, saying what needs the room and how much there is, when the filesystem holding any DIR
# (or, for one that does not exist yet, its nearest existing parent) has less than GIB gibibytes
# available. `make test` and `make bench` call it first: on a full disk they failed far from the
# cause, as a PostgreSQL that stopped mid-COPY ("use of closed network connection" while the
# bench seeded its data set) or a Go build that could not write its cache.
set -eu

what=$1
need=$2
shift 2
for dir in "$@"; do
	d=$dir
	while [ ! -e "$d" ]; do d=$(dirname "$d"); done
	avail_kib=$(df -Pk "$d" | awk 'NR == 2 { print $4 }')
	if [ "$avail_kib" -lt $((need * 1024 * 1024)) ]; then
		echo "$what needs about $need GiB free under $dir; its filesystem has $((avail_kib / 1024)) MiB:" >&2
		df -h "$d" >&2
		echo "free some (the Go build cache, \`go clean -cache\`, grows with every build and test run)." >&2
		exit 1
	fi
done
