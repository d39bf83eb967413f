#!/usr/bin/env bash
# test/redis-cluster.sh start|stop|status|env
#
# A private three-master Redis Cluster (no replicas) for the cluster tests:
# three redis-server processes with cluster-enabled yes on free ports, joined
# with `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`
# on first start, so the 16384 slots are split over three shards. Ports,
# pids, logs, nodes.conf and data live under REDIS_CLUSTER_DIR (default
# test/.run/redis-cluster/); `stop` + `start` bring the same cluster back.
# `start` returns once every node reports cluster_state:ok. `env` prints
# OPPSYNC_TEST_REDIS_CLUSTER_ADDRS (comma-separated host:port of the nodes).
set -euo pipefail
SCRIPT_NAME=redis-cluster.sh
# shellcheck source=test/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="${REDIS_CLUSTER_DIR:-$RUN_ROOT/redis-cluster}"
NODES=3


node_dir() { echo "$DIR/node$1"; }

start_node() {
	local i=$1 d port
	d=$(node_dir "$i")
	mkdir -p "$d"
	if pid_alive "$d/redis.pid" redis-server; then
		return 0
	fi
	if [[ ! -s $d/port ]]; then
		# Data port and cluster bus (port + 10000) both below Linux's
		# ephemeral range (32768-60999), so no outgoing connection takes the
		# bus port between the check and the bind.
		local p
		for _ in $(seq 1 200); do
			p=$((20000 + RANDOM % 2700))
			port_in_use "$p" || port_in_use $((p + 10000)) || break
		done
		echo "$p" >"$d/port"
	fi
	port=$(<"$d/port")
	port_in_use "$port" && die "port $port (from $d/port) is taken by another process; remove $DIR"
	# The cluster bus listens on port + 10000: keep it free as well.
	port_in_use $((port + 10000)) && die "cluster bus port $((port + 10000)) of node $i is taken; remove $DIR"
	cat >"$d/redis.conf" <<CONF
# Written by test/redis-cluster.sh; regenerated on every start.
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
pidfile $d/redis.pid
logfile $d/redis.log
dir $d
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 5000
appendonly yes
appendfsync everysec
save ""
CONF
	redis-server "$d/redis.conf" >&2 || die "redis-server node $i failed to start; log: $(tail -n 20 "$d/redis.log" 2>/dev/null)"
}

addrs() {
	local i out=()
	for ((i = 1; i <= NODES; i++)); do
		out+=("127.0.0.1:$(<"$(node_dir "$i")/port")")
	done
	local IFS=,
	echo "${out[*]}"
}

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

cluster_ok() {
	local i port
	for ((i = 1; i <= NODES; i++)); do
		port=$(<"$(node_dir "$i")/port")
		[[ $(cli "$port" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p') == ok ]] || return 1
	done
}

cmd_start() {
	ensure_redis_server
	mkdir -p "$DIR"
	local i port deadline
	for ((i = 1; i <= NODES; i++)); do
		start_node "$i"
	done
	for ((i = 1; i <= NODES; i++)); do
		port=$(<"$(node_dir "$i")/port")
		deadline=$((SECONDS + 60))
		until [[ $(cli "$port" ping 2>/dev/null) == PONG ]]; do
			if ((SECONDS >= deadline)); then
				tail -n 20 "$(node_dir "$i")/redis.log" >&2 2>/dev/null || true
				die "node $i (port $port) did not answer PING within 60s; see $(node_dir "$i")/redis.log"
			fi
			sleep 0.1
		done
	done
	if [[ ! -f $DIR/created ]]; then
		local hosts
		hosts=$(addrs | tr , ' ')
		# shellcheck disable=SC2086 # one argument per node
		redis-cli --cluster create $hosts --cluster-replicas 0 --cluster-yes >"$DIR/create.log" 2>&1 ||
			{ cat "$DIR/create.log" >&2; die "redis-cli --cluster create failed"; }
		touch "$DIR/created"
	fi
	deadline=$((SECONDS + 30))
	until cluster_ok; do
		((SECONDS < deadline)) || die "cluster not ok within 30s: $(cli "$(<"$(node_dir 1)/port")" cluster info | head -3)"
		sleep 0.2
	done
	log "cluster of $NODES masters up on $(addrs)"
}

cmd_stop() {
	local i
	for ((i = 1; i <= NODES; i++)); do
		stop_pid "$(node_dir "$i")/redis.pid" redis-server "redis cluster node $i"
	done
}

cmd_status() {
	local i d up=0
	for ((i = 1; i <= NODES; i++)); do
		d=$(node_dir "$i")
		pid_alive "$d/redis.pid" redis-server && up=$((up + 1))
	done
	if ((up == NODES)) && cluster_ok; then
		echo "redis cluster running on $(addrs)"
	else
		echo "redis cluster not running ($up of $NODES nodes up)"
		return 1
	fi
}

cmd_env() {
	[[ -s $(node_dir 1)/port ]] || die "no ports yet: run '$0 start' first"
	echo "export OPPSYNC_TEST_REDIS_CLUSTER_ADDRS=$(addrs)"
}

dispatch "$@"
