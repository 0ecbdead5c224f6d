# apt_install WHO HINT [OPTION...] PACKAGE...: the install step shared by ops/stack/install-deps.sh
# (make deps), ops/install-ops-deps.sh (make ops-deps) and ops/clients/install-deps.sh
# (make client-deps), which source this file once they know what is missing.
#
# Installs the packages with `apt-get install -y` and the options given, noninteractively, as
# root or through sudo, after an `apt-get update`. Without apt-get, or neither root nor sudo, it
# says what to do (HINT: how to install them otherwise) and exits 1. It leaves $sudo set ("sudo"
# or empty) for what the caller runs afterwards.
apt_install() {
	who=$1 hint=$2
	shift 2
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "$who: apt-get not found; $hint" >&2
		exit 1
	fi
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null 2>&1; then
			echo "$who: not root and sudo not found; as root run: apt-get install $*" >&2
			exit 1
		fi
		sudo="sudo"
	fi
	$sudo apt-get update
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}
