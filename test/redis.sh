#!/usr/bin/env bash
# test/redis.sh start|stop|restart|status|env
#
# A private redis-server for the integration tests, with its port, pid file,
# log and data (AOF on) under test/.run/redis/. Installs Debian's
# redis-server when it is missing. `start` reuses a running instance;
# `stop` + `start` (or `restart`) keep the port and the data, so fault tests
# can restart Redis under a running consumer. `env` prints the variable the
# Go tests read (internal/testenv).
#
# REDIS_START_TIMEOUT (seconds, default 120) bounds the wait for PING after
# a start. REDIS_APPENDFSYNC (everysec, always or no; default everysec) sets the AOF
# fsync policy. A `stop` (SIGTERM) fsyncs the AOF whatever the policy, so a
# stop/start loses nothing; only a crash of the host can lose up to a second
# of acknowledged writes under everysec.
set -euo pipefail
SCRIPT_NAME=redis.sh
# shellcheck source=test/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="$RUN_ROOT/redis"
PIDFILE="$DIR/redis.pid"
PORTFILE="$DIR/port"
CONF="$DIR/redis.conf"
LOGFILE="$DIR/redis.log"
APPENDFSYNC="${REDIS_APPENDFSYNC:-everysec}"
[[ $APPENDFSYNC =~ ^(everysec|always|no)$ ]] || { echo "redis.sh: REDIS_APPENDFSYNC must be everysec, always or no, not '$APPENDFSYNC'" >&2; exit 2; }


# ping PORT: true when Redis answers PING with PONG.
ping() {
	local port=$1 reply=""
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf 'PING\r\n' >&3
	read -r -t 2 reply <&3 || true
	exec 3>&- 3<&-
	[[ $reply == "+PONG"* ]]
}

cmd_start() {
	mkdir -p "$DIR"
	if pid_alive "$PIDFILE" redis-server; then
		log "already running on port $(<"$PORTFILE") (pid $(<"$PIDFILE"))"
		return 0
	fi
	ensure_redis_server
	local port
	port=$(read_or_pick_port "$PORTFILE")
	port_in_use "$port" && die "port $port (from $PORTFILE) is taken by another process; run '$0 stop' or remove $DIR"
	cat >"$CONF" <<CONF
# Written by test/redis.sh; regenerated on every start.
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
pidfile $PIDFILE
logfile $LOGFILE
dir $DIR
appendonly yes
appendfsync $APPENDFSYNC
save ""
CONF
	redis-server "$CONF" >&2 || die "redis-server failed to start; log: $(tail -n 20 "$LOGFILE" 2>/dev/null)"
	# Loading a large AOF (after benchmarks) takes a while: PING answers
	# LOADING until it is done.
	local timeout=${REDIS_START_TIMEOUT:-120}
	local deadline=$((SECONDS + timeout))
	until pid_alive "$PIDFILE" redis-server && ping "$port" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "redis did not answer PING on port $port within ${timeout}s; last log lines:"
			tail -n 30 "$LOGFILE" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
	log "started on port $port (pid $(cat "$PIDFILE"))"
}

cmd_stop() { stop_pid "$PIDFILE" redis-server redis; }

cmd_status() {
	if pid_alive "$PIDFILE" redis-server; then
		echo "redis running on 127.0.0.1:$(<"$PORTFILE") (pid $(<"$PIDFILE"))"
	else
		echo "redis not running"
		return 1
	fi
}

cmd_env() {
	[[ -s $PORTFILE ]] || die "no port yet: run '$0 start' first"
	echo "export OPPSYNC_TEST_REDIS_ADDR=127.0.0.1:$(<"$PORTFILE")"
}

dispatch "$@"
