#!/bin/sh
# Installs the tools the monitoring checks of `make test` use, with apt-get, on Debian or Ubuntu:
#   - prometheus: the server and promtool (check config, check rules, test rules), which the Go
#     tests run against ops/prometheus/ and the running Threadline server;
#   - prometheus-redis-exporter, prometheus-postgres-exporter, prometheus-node-exporter: the
#     exporters of the compose monitoring profile, whose metric names the tests check against
#     the alerts and the dashboard;
#   - docker-compose (v1): `docker-compose config -q` validates docker-compose.yml;
#   - prometheus-alertmanager: Alertmanager and amtool, which check ops/alertmanager's
#     configuration, its routes, and (a real Alertmanager) its inhibition rules.
# Does nothing, quickly, when all are present. Uses sudo when not run as root.
#
# Recommended packages are left out (no Docker engine). Where systemd runs, the packages start
# system services (Prometheus on :9090, the exporters on their ports); this script stops and
# disables them right away: the tests run their own, on free ports.
set -eu

have() { command -v "$1" >/dev/null 2>&1; }

missing=""
{ have promtool && have prometheus; } || missing="$missing prometheus"
for pkg in prometheus-redis-exporter prometheus-postgres-exporter prometheus-node-exporter; do
	have "$pkg" || missing="$missing $pkg"
done
have docker-compose || missing="$missing docker-compose"
{ have amtool && have prometheus-alertmanager; } || missing="$missing prometheus-alertmanager"
if [ -z "$missing" ]; then
	exit 0
fi

echo "install-ops-deps: missing:$missing; installing with apt-get" >&2
. "$(dirname "$0")/apt-install.sh"
# shellcheck disable=SC2086 # $missing is a list of package names
apt_install install-ops-deps "install Prometheus 2 (with promtool), the redis, postgres and node exporters, Alertmanager (with amtool) and docker-compose with your package manager" \
	--no-install-recommends $missing
if [ -d /run/systemd/system ] && have systemctl; then
	for svc in prometheus prometheus-redis-exporter prometheus-postgres-exporter prometheus-node-exporter prometheus-alertmanager; do
		if systemctl is-enabled "$svc" >/dev/null 2>&1; then
			echo "install-ops-deps: stopping and disabling the system service $svc that its package started" >&2
			$sudo systemctl disable --now "$svc" || true
		fi
	done
fi
