# shellcheck shell=bash
# Helpers shared by the service scripts under test/. Sourced, not run.
#
# Everything a script starts lives under test/.run/<service>/ (git-ignored):
# its ports, pid file, data and logs. Ports are chosen once and then reused
# by stop/start/restart, so a fault test can restart a service and its
# clients reconnect to the same address with the same data.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
RUN_ROOT="$REPO_ROOT/test/.run"

log() { printf '%s: %s\n' "${SCRIPT_NAME:-test}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# port_in_use PORT: true when something listens on 127.0.0.1:PORT (or any
# address), checked with ss when present and a TCP connect otherwise.
port_in_use() {
	local port=$1
	if command -v ss >/dev/null 2>&1; then
		local listening
		listening=$(ss -Htln "sport = :$port" 2>/dev/null || true)
		[[ -n $listening ]] && return 0
	fi
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# free_port: prints a port nobody listens on. The range sits below Linux's
# ephemeral range (32768-60999) so outgoing connections never take it while
# a service is stopped for a restart.
free_port() {
	local port
	for _ in $(seq 1 200); do
		port=$((20000 + RANDOM % 12000))
		if ! port_in_use "$port"; then
			echo "$port"
			return 0
		fi
	done
	die "no free port found in 20000-31999"
}

# pid_alive PIDFILE PATTERN: true when PIDFILE names a live process whose
# command line contains PATTERN (guards against a recycled pid).
pid_alive() {
	local pidfile=$1 pattern=$2 pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	local cmdline
	# Read into a variable: `tr | grep -q` fails under pipefail when grep
	# exits early and tr gets SIGPIPE.
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$pattern"* ]]
}

# stop_pid PIDFILE PATTERN NAME: SIGTERM, wait up to 30s, then SIGKILL.
stop_pid() {
	local pidfile=$1 pattern=$2 name=$3 pid
	if ! pid_alive "$pidfile" "$pattern"; then
		rm -f "$pidfile"
		log "$name not running"
		return 0
	fi
	pid=$(<"$pidfile")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 300); do
		pid_alive "$pidfile" "$pattern" || break
		sleep 0.1
	done
	if pid_alive "$pidfile" "$pattern"; then
		log "$name (pid $pid) ignored SIGTERM for 30s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			pid_alive "$pidfile" "$pattern" || break
			sleep 0.1
		done
	fi
	rm -f "$pidfile"
	log "$name stopped"
}

# wait_port PORT TIMEOUT_S: true once PORT accepts connections.
wait_port() {
	local port=$1 timeout=$2 deadline
	deadline=$((SECONDS + timeout))
	while ((SECONDS < deadline)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# read_or_pick_port FILE: the port stored in FILE, or a new free one that is
# then stored there.
read_or_pick_port() {
	local file=$1 port
	if [[ -s $file ]]; then
		port=$(<"$file")
		[[ $port =~ ^[0-9]+$ ]] || die "$file holds no port: $port"
	else
		port=$(free_port)
		echo "$port" >"$file"
	fi
	echo "$port"
}

# ensure_redis_server: installs Debian's redis-server (with redis-cli) when
# missing, showing apt's output only when it fails.
ensure_redis_server() {
	command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
	log "redis-server missing: installing Debian's package"
	export DEBIAN_FRONTEND=noninteractive
	local out
	out=$(mktemp)
	if ! { apt-get update -qq && apt-get install -y -qq redis-server; } >"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		die "installing redis-server failed"
	fi
	rm -f "$out"
	command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after install"
}

# dispatch CMD: runs the script's cmd_CMD function (restart = stop, then
# start), or prints the usage and exits 2.
dispatch() {
	local cmd=${1:-}
	if [[ $cmd == restart ]]; then
		cmd_stop && cmd_start
		return
	fi
	if [[ $cmd =~ ^[a-z]+$ ]] && declare -F "cmd_$cmd" >/dev/null; then
		"cmd_$cmd"
		return
	fi
	local cmds
	cmds=$(declare -F | sed -n 's/^declare -f cmd_//p' | tr '\n' '|')
	echo "usage: $0 ${cmds}restart" >&2
	exit 2
}
