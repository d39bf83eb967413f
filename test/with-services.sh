#!/usr/bin/env bash
# test/with-services.sh CMD [ARGS...]
#
# Runs CMD with the test Redis and Kafka up and their addresses exported
# (OPPSYNC_TEST_REDIS_ADDR, OPPSYNC_TEST_KAFKA_BROKERS), then exits with
# CMD's status. A service that was already running is reused and left
# running; a service this script started is stopped on the way out, also
# when CMD fails or the run is interrupted. So on a fresh clone (CI) nothing
# is left behind, and a developer's `make services-up` survives `make test`.
set -euo pipefail
SCRIPT_NAME=with-services.sh
# shellcheck source=test/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# > 0)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

started=()
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local i
	# Stop in reverse start order: Kafka before Redis.
	for ((i = ${#started[@]} - 1; i >= 0; i--)); do
		"$REPO_ROOT/test/${started[i]}.sh" stop || log "stopping ${started[i]} failed"
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$RUN_ROOT"
t0=$SECONDS
{
	# Two runs starting at once in the same tree must not both start a
	# service on the same port.
	if command -v flock >/dev/null 2>&1; then
		flock -w 300 9 || die "waited 300s for $RUN_ROOT/services.lock"
	fi
	for s in redis kafka; do
		if "$REPO_ROOT/test/$s.sh" status >/dev/null 2>&1; then
			log "reusing the running $s (left running afterwards)"
		else
			started+=("$s")
			"$REPO_ROOT/test/$s.sh" start
		fi
	done
} 9>"$RUN_ROOT/services.lock"
eval "$("$REPO_ROOT/test/redis.sh" env)"
eval "$("$REPO_ROOT/test/kafka.sh" env)"
export OPPSYNC_TEST_REDIS_ADDR OPPSYNC_TEST_KAFKA_BROKERS
log "services ready in $((SECONDS - t0))s: redis $OPPSYNC_TEST_REDIS_ADDR, kafka $OPPSYNC_TEST_KAFKA_BROKERS"

status=0
"$@" || status=$?
if ((status != 0)); then
	log "'$*' exited $status; service logs: test/.run/kafka/logs/server.log, test/.run/redis/redis.log"
fi
exit "$status"
