#!/usr/bin/env bash
# Local infrastructure without Docker: a real Apache Kafka broker (KRaft, from Maven Central jars)
# and a real PostgreSQL server (Debian packages), both on loopback, state under $STATE_DIR.
#
#   infra/local.sh up      install what is missing, start both, wait until ready (idempotent)
#   infra/local.sh down    stop both (only the processes this script started, by PID file)
#   infra/local.sh status  print what is running
#
# Environment: STATE_DIR (default .local/dev), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# PG_PORT (5433), PG_PASSWORD (ingest). KAFKA_SASL_PORT (unset): also listen with SASL_PLAINTEXT there,
# mechanism PLAIN, for the users in KAFKA_SASL_USERS ("user:password user2:password2"); the test suite
# connects through it the way a managed Kafka is reached.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE_DIR=${STATE_DIR:-$ROOT/.local/dev}
case "$STATE_DIR" in /*) ;; *) STATE_DIR=$ROOT/$STATE_DIR ;; esac
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_SASL_PORT=${KAFKA_SASL_PORT:-}
KAFKA_SASL_USERS=${KAFKA_SASL_USERS:-}
PG_PORT=${PG_PORT:-5433}
PG_PASSWORD=${PG_PASSWORD:-ingest}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
KAFKA_LIBS=$ROOT/.local/kafka-libs   # shared by every state dir: the jars never change per instance
PG_DIR=$STATE_DIR/postgres
KAFKA_DIR=$STATE_DIR/kafka

log() { printf '[infra] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_free() {  # true when nothing listens on 127.0.0.1:$1
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

apt_install() {
  [ "$(id -u)" = 0 ] || die "missing $*; install it (e.g. sudo apt-get install $*) and run again"
  log "installing $* from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
  command -v pg_ctl >/dev/null 2>&1 && dirname "$(readlink -f "$(command -v pg_ctl)")"
}

ensure_java() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

fetch_kafka() {
  if [ -f "$KAFKA_LIBS/.complete" ]; then return; fi
  ensure_java
  log "resolving Apache Kafka from Maven Central (first run only)"
  rm -rf "$KAFKA_LIBS"; mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/infra/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime >"$ROOT/.local/kafka-fetch.log" 2>&1 \
    || die "maven could not fetch Kafka; see .local/kafka-fetch.log"
  touch "$KAFKA_LIBS/.complete"
}

sasl_properties() {  # the PLAIN users of the SASL listener, from KAFKA_SASL_USERS
  local users="" pair
  for pair in $KAFKA_SASL_USERS; do
    users="$users user_${pair%%:*}=\"${pair#*:}\""
  done
  [ -n "$users" ] || die "KAFKA_SASL_PORT needs KAFKA_SASL_USERS (\"user:password ...\")"
  printf 'sasl.enabled.mechanisms=PLAIN\n'
  printf 'listener.name.sasl_plaintext.plain.sasl.jaas.config=%s%s;\n' \
    'org.apache.kafka.common.security.plain.PlainLoginModule required' "$users"
}

kafka_running() { [ -f "$KAFKA_DIR/pid" ] && kill -0 "$(cat "$KAFKA_DIR/pid")" 2>/dev/null; }

start_kafka() {
  fetch_kafka
  mkdir -p "$KAFKA_DIR"
  if kafka_running; then log "kafka already running (pid $(cat "$KAFKA_DIR/pid"))"; return; fi
  port_free "$KAFKA_PORT" || die "port $KAFKA_PORT is taken by another process; set KAFKA_PORT"
  port_free "$KAFKA_CONTROLLER_PORT" || die "port $KAFKA_CONTROLLER_PORT is taken; set KAFKA_CONTROLLER_PORT"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT" sasl_config=""
  if [ -n "$KAFKA_SASL_PORT" ]; then
    port_free "$KAFKA_SASL_PORT" || die "port $KAFKA_SASL_PORT is taken; set KAFKA_SASL_PORT"
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
    sasl_config=$(sasl_properties)
  fi
  cat >"$KAFKA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=6
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
message.max.bytes=8388608
$sasl_config
EOF
  local cp="$KAFKA_LIBS/*"
  local jvm=(java -Xms256m -Xmx768m -XX:+UseG1GC -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" -cp "$cp")
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" \
      >"$KAFKA_DIR/format.log" 2>&1 || die "kafka storage format failed; see $KAFKA_DIR/format.log"
  fi
  log "starting kafka on 127.0.0.1:$KAFKA_PORT"
  nohup "${jvm[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/kafka.log" 2>&1 &
  echo $! >"$KAFKA_DIR/pid"
}

pg_running() { [ -f "$PG_DIR/data/postmaster.pid" ] && as_postgres "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; }

start_postgres() {
  [ -n "$(pg_bindir)" ] || apt_install postgresql
  local bin; bin=$(pg_bindir)
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR"; fi
  if pg_running; then log "postgres already running"; return; fi
  port_free "$PG_PORT" || die "port $PG_PORT is taken by another process; set PG_PORT"
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "initialising a postgres data dir in $PG_DIR/data"
    local pwfile="$PG_DIR/pwfile"
    printf '%s\n' "$PG_PASSWORD" >"$pwfile"
    if [ "$(id -u)" = 0 ]; then chown postgres "$pwfile"; fi
    as_postgres "$bin/initdb" -D "$PG_DIR/data" -U postgres --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
      || die "initdb failed; see $PG_DIR/initdb.log"
    rm -f "$pwfile"
  fi
  mkdir -p "$PG_DIR/run"
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR/run"; fi
  log "starting postgres on 127.0.0.1:$PG_PORT"
  as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start \
    -o "-p $PG_PORT -k $PG_DIR/run -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on" >/dev/null \
    || die "postgres did not start; see $PG_DIR/postgres.log"
}

wait_kafka() {
  local deadline=$((SECONDS + 90))
  until "$PYTHON" "$ROOT/infra/wait_kafka.py" "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1; do
    kafka_running || die "kafka exited; see $KAFKA_DIR/kafka.log"
    [ $SECONDS -lt $deadline ] || die "kafka not ready after 90s; see $KAFKA_DIR/kafka.log"
    sleep 1
  done
  log "kafka ready"
}

stop_all() {
  if kafka_running; then
    local pid; pid=$(cat "$KAFKA_DIR/pid")
    log "stopping kafka (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$KAFKA_DIR/pid"
  if pg_running; then
    log "stopping postgres"
    as_postgres "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true
  fi
}

case "${1:-}" in
  up)
    mkdir -p "$ROOT/.local" "$STATE_DIR"
    start_postgres
    start_kafka
    wait_kafka
    ;;
  down) stop_all ;;
  status)
    kafka_running && echo "kafka: running on 127.0.0.1:$KAFKA_PORT (pid $(cat "$KAFKA_DIR/pid"))" || echo "kafka: stopped"
    pg_running && echo "postgres: running on 127.0.0.1:$PG_PORT" || echo "postgres: stopped"
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
