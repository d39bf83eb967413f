#!/usr/bin/env bash
# test/kafka.sh start|stop|restart|status|env
#
# A private single-node Apache Kafka 4.x broker (KRaft, broker+controller in
# one JVM) for the integration tests.
#
# - The broker's jars and all their runtime dependencies come from Maven
#   Central through test/kafka/pom.xml into .cache/kafka/<version>-<pom hash>/
#   (git-ignored; Maven's local repository is .cache/m2), downloaded only
#   when that folder is incomplete.
# - Ports, config, data and logs live under test/.run/kafka/. The PLAINTEXT
#   listener and the controller listener get free ports on first start and
#   keep them: `stop` + `start` (or `restart`) bring the same broker back with
#   the same data, for fault tests that stop the broker mid-stream.
# - `start` returns once the broker answers metadata requests (a probe with
#   the Java admin client), or fails printing the tail of the broker log.
# - `env` prints the variable the Go tests read (internal/testenv).
#
# Environment: JAVA_HOME (optional; Java 17+), KAFKA_START_TIMEOUT (seconds,
# default 180), and for a second, secured broker (the security tests):
# - KAFKA_RUN_DIR: its folder instead of test/.run/kafka (ports, data, logs);
# - KAFKA_SASL_SSL_CERTS: a folder written by test/certs.sh; adds a SASL_SSL
#   listener (SCRAM-SHA-512, server certificate from that folder) on its own
#   free port, stored in sasl-ssl-port; `env` then also prints
#   OPPSYNC_TEST_KAFKA_SASL_SSL_BROKERS;
# - KAFKA_SCRAM_USER, KAFKA_SCRAM_PASSWORD: the SCRAM-SHA-512 user created
#   when the storage is formatted (first start), for that listener.
# The PLAINTEXT listener stays, for the readiness probe and inter-broker use.
set -euo pipefail
SCRIPT_NAME=kafka.sh
# shellcheck source=test/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$REPO_ROOT/test/kafka/pom.xml"
PROBE="$REPO_ROOT/test/kafka/Probe.java"
DIR="${KAFKA_RUN_DIR:-$RUN_ROOT/kafka}"
SASL_SSL_CERTS="${KAFKA_SASL_SSL_CERTS:-}"
SPORTFILE="$DIR/sasl-ssl-port"
DATA="$DIR/data"
LOGDIR="$DIR/logs"
PIDFILE="$DIR/kafka.pid"
PORTFILE="$DIR/port"
CPORTFILE="$DIR/controller-port"
PROPS="$DIR/server.properties"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

kafka_version() {
	sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM"
}

# lib_dir: the cache folder for the jars of the pom as it is now, so a
# version bump in the pom downloads into a new folder.
lib_dir() {
	local hash
	hash=$(sha256sum "$POM" | cut -c1-12)
	echo "$REPO_ROOT/.cache/kafka/$(kafka_version)-$hash"
}

check_java() {
	command -v "$JAVA" >/dev/null 2>&1 || die "java not found (set JAVA_HOME or put Java 17+ on PATH)"
	local v
	v=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
	if ! [[ ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
		die "Kafka $(kafka_version) needs Java 17+, $JAVA is '$v'"
	fi
}

ensure_jars() {
	local lib
	lib="$(lib_dir)"
	[[ -f $lib/.complete ]] && return 0
	command -v mvn >/dev/null 2>&1 || die "mvn not found: Maven is needed to fetch the Kafka jars"
	log "fetching Kafka $(kafka_version) jars with Maven into ${lib#"$REPO_ROOT"/}"
	rm -rf "$lib"
	local out
	out=$(mktemp)
	if ! mvn -B -q -f "$POM" -Dmaven.repo.local="$REPO_ROOT/.cache/m2" \
		dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$lib/lib" >"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		die "maven could not fetch the Kafka jars"
	fi
	rm -f "$out"
	ls "$lib"/lib/kafka_2.13-*.jar >/dev/null 2>&1 || die "maven ran but $lib/lib has no kafka_2.13 jar"
	touch "$lib/.complete"
}

classpath() { echo "$(lib_dir)/lib/*"; }

# random_cluster_id: a Kafka Uuid (16 random bytes, base64url, unpadded) that
# does not start with '-', as kafka-storage random-uuid would print.
random_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $id != -* ]] && break
	done
	echo "$id"
}

write_config() {
	local port=$1 cport=$2 sport=${3:-}
	local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
	local advertised="PLAINTEXT://127.0.0.1:$port"
	local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
	if [[ -n $sport ]]; then
		listeners+=",SASL_SSL://127.0.0.1:$sport"
		advertised+=",SASL_SSL://127.0.0.1:$sport"
		protocols+=",SASL_SSL:SASL_SSL"
	fi
	cat >"$PROPS" <<PROPS
# Written by test/kafka.sh; regenerated on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$DATA

# Tuned for tests on one small machine.
num.partitions=4
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
PROPS
	if [[ -n $sport ]]; then
		cat >>"$PROPS" <<PROPS

# SASL_SSL listener for the security tests (KAFKA_SASL_SSL_CERTS).
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$SASL_SSL_CERTS/server-keystore.pem
ssl.client.auth=none
PROPS
	fi
	cat >"$DIR/log4j2.properties" <<LOG4J
# Written by test/kafka.sh: the broker logs to a file, never to the terminal.
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $LOGDIR/server.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
LOG4J
	cat >"$DIR/probe-log4j2.properties" <<LOG4J
status = error
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = probe: %p %m%n
rootLogger.level = ERROR
rootLogger.appenderRef.err.ref = err
LOG4J
}

log_tail() {
	log "last lines of $LOGDIR/server.log:"
	tail -n 40 "$LOGDIR/server.log" >&2 2>/dev/null || true
	if [[ -s $LOGDIR/stdout.log ]]; then
		log "last lines of $LOGDIR/stdout.log:"
		tail -n 20 "$LOGDIR/stdout.log" >&2 || true
	fi
}

probe() {
	"$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 \
		-Dlog4j2.configurationFile="$DIR/probe-log4j2.properties" \
		-cp "$(classpath)" "$PROBE" "127.0.0.1:$1"
}

cmd_start() {
	mkdir -p "$DIR" "$LOGDIR"
	if pid_alive "$PIDFILE" kafka.Kafka; then
		log "already running on port $(<"$PORTFILE") (pid $(<"$PIDFILE"))"
		return 0
	fi
	check_java
	ensure_jars
	local port cport
	port=$(read_or_pick_port "$PORTFILE")
	cport=$(read_or_pick_port "$CPORTFILE")
	[[ $port != "$cport" ]] || die "broker and controller ports are both $port; remove $DIR"
	port_in_use "$port" && die "port $port (from $PORTFILE) is taken by another process; run '$0 stop' or remove $DIR"
	port_in_use "$cport" && die "port $cport (from $CPORTFILE) is taken by another process; run '$0 stop' or remove $DIR"
	local sport=""
	if [[ -n $SASL_SSL_CERTS ]]; then
		[[ -s $SASL_SSL_CERTS/server-keystore.pem ]] || die "KAFKA_SASL_SSL_CERTS=$SASL_SSL_CERTS has no server-keystore.pem (run test/certs.sh DIR)"
		SASL_SSL_CERTS=$(cd "$SASL_SSL_CERTS" && pwd)
		sport=$(read_or_pick_port "$SPORTFILE")
		port_in_use "$sport" && die "port $sport (from $SPORTFILE) is taken by another process; run '$0 stop' or remove $DIR"
	fi
	write_config "$port" "$cport" "$sport"

	if [[ ! -f $DATA/meta.properties ]]; then
		[[ -s $DIR/cluster.id ]] || random_cluster_id >"$DIR/cluster.id"
		log "formatting storage (cluster id $(<"$DIR/cluster.id"))"
		local scram=()
		if [[ -n $sport && -n ${KAFKA_SCRAM_USER:-} ]]; then
			scram=(--add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USER,password=${KAFKA_SCRAM_PASSWORD:?KAFKA_SCRAM_PASSWORD must be set with KAFKA_SCRAM_USER}]")
		fi
		"$JAVA" -Xmx256m -Dlog4j2.configurationFile="$DIR/log4j2.properties" \
			-cp "$(classpath)" kafka.tools.StorageTool format --ignore-formatted \
			-t "$(<"$DIR/cluster.id")" -c "$PROPS" "${scram[@]}" >>"$LOGDIR/format.log" 2>&1 ||
			{ tail -n 30 "$LOGDIR/format.log" >&2; die "kafka storage format failed"; }
	fi

	local t0=$SECONDS
	nohup "$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$DIR/log4j2.properties" \
		-cp "$(classpath)" kafka.Kafka "$PROPS" \
		</dev/null >>"$LOGDIR/stdout.log" 2>&1 &
	echo $! >"$PIDFILE"

	local pid=$! deadline=$((SECONDS + START_TIMEOUT)) phase=port
	while :; do
		# kill -0, not pid_alive: until nohup execs java the child's command
		# line is still this script's.
		if ! kill -0 "$pid" 2>/dev/null; then
			log_tail
			rm -f "$PIDFILE"
			die "broker exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			log_tail
			die "broker not ready within ${START_TIMEOUT}s (waiting for $phase on port $port); it is still running, see $LOGDIR"
		fi
		if [[ $phase == port ]]; then
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
				phase=metadata
				continue
			fi
			sleep 0.2
		else
			probe "$port" >/dev/null 2>"$LOGDIR/probe.log" && break
			sleep 0.5
		fi
	done
	log "started Kafka $(kafka_version) on port $port, controller $cport (pid $(<"$PIDFILE"), ready in $((SECONDS - t0))s)"
}

cmd_stop() { stop_pid "$PIDFILE" kafka.Kafka kafka; }

cmd_status() {
	if pid_alive "$PIDFILE" kafka.Kafka; then
		echo "kafka running on 127.0.0.1:$(<"$PORTFILE") (pid $(<"$PIDFILE"))"
	else
		echo "kafka not running"
		return 1
	fi
}

cmd_env() {
	[[ -s $PORTFILE ]] || die "no port yet: run '$0 start' first"
	echo "export OPPSYNC_TEST_KAFKA_BROKERS=127.0.0.1:$(<"$PORTFILE")"
	if [[ -n $SASL_SSL_CERTS && -s $SPORTFILE ]]; then
		echo "export OPPSYNC_TEST_KAFKA_SASL_SSL_BROKERS=127.0.0.1:$(<"$SPORTFILE")"
	fi
}

cmd_fetch() { check_java && ensure_jars; }

dispatch "$@"
