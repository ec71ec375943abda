#!/usr/bin/env bash
# A real Trino server for the tests, without Docker: the core server package and the memory connector plugin from
# Maven Central (infra/engines/trino/pom.xml), one node that is coordinator and worker, on loopback.
#
#   infra/engines/trino.sh up      install what is missing, start Trino, wait until it runs queries (idempotent)
#   infra/engines/trino.sh down    stop it (only the process this script started, by PID file)
#   infra/engines/trino.sh status  print whether it runs
#
# Listeners: plain HTTP on 127.0.0.1:$TRINO_PORT (no authentication: the user is whatever the client names), and
# HTTPS on 127.0.0.1:$TRINO_HTTPS_PORT with password-file authentication of $TRINO_USER/$TRINO_PASSWORD and a
# self-signed certificate for localhost/127.0.0.1 ($STATE_DIR/engines/trino/etc/tls/cert.pem: trust it to verify).
# Catalogs: `memory` (the memory connector) and `scratch` (a second memory catalog, to crawl more than one).
#
# Environment: STATE_DIR (default .local/test), TRINO_PORT (18080), TRINO_HTTPS_PORT (18443), TRINO_USER (ingest),
# TRINO_PASSWORD (ingest-secret), TRINO_JAVA_HOME (a Java 24+ runtime; default: Temurin 25 if installed, else the
# newest JDK under /usr/lib/jvm that is recent enough), TRINO_HEAP (2G).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE_DIR=${STATE_DIR:-$ROOT/.local/test}
case "$STATE_DIR" in /*) ;; *) STATE_DIR=$ROOT/$STATE_DIR ;; esac
TRINO_PORT=${TRINO_PORT:-18080}
TRINO_HTTPS_PORT=${TRINO_HTTPS_PORT:-18443}
TRINO_USER=${TRINO_USER:-ingest}
TRINO_PASSWORD=${TRINO_PASSWORD:-ingest-secret}
TRINO_HEAP=${TRINO_HEAP:-2G}
TRINO_VERSION=476  # as in infra/engines/trino/pom.xml
TRINO_LIBS=$ROOT/.local/trino-libs   # shared by every state dir: the server and plugin jars never change per instance
SERVER=$TRINO_LIBS/trino-server-core-$TRINO_VERSION
DIR=$STATE_DIR/engines/trino
READY_TIMEOUT=${TRINO_READY_TIMEOUT:-150}

log() { printf '[trino] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_free() {  # true when nothing listens on 127.0.0.1:$1
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

apt_install() {
  [ "$(id -u)" = 0 ] || die "missing $*; install it (e.g. sudo apt-get install $*) and run again"
  log "installing $* from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

java_major() {  # the feature release of the java binary $1 (e.g. 25), or 0
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' \
    | head -n1 | grep . || echo 0
}

find_java() {  # a java binary of release 24 or newer: what Trino $TRINO_VERSION runs on
  local home
  if [ -n "${TRINO_JAVA_HOME:-}" ] && [ "$(java_major "$TRINO_JAVA_HOME/bin/java")" -lt 24 ]; then
    die "TRINO_JAVA_HOME=$TRINO_JAVA_HOME is not a Java 24+ runtime, which Trino $TRINO_VERSION needs"
  fi
  for home in ${TRINO_JAVA_HOME:-} ${JAVA_HOME:-} /usr/lib/jvm/temurin-25-jdk-amd64 \
      $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -V -r); do
    home=${home%/}
    if [ -x "$home/bin/java" ] && [ "$(java_major "$home/bin/java")" -ge 24 ]; then
      echo "$home/bin/java"; return
    fi
  done
  # Debian 12 packages no Java newer than 17, and Maven Central has no JDK: nothing to install from here.
  die "Trino $TRINO_VERSION needs Java 24 or newer and none was found (looked at TRINO_JAVA_HOME, JAVA_HOME, \
/usr/lib/jvm); install a JDK 24+ (e.g. Temurin 25) and set TRINO_JAVA_HOME"
}

fetch_trino() {
  if [ -f "$TRINO_LIBS/.complete-$TRINO_VERSION" ]; then return; fi
  exec 9>"$ROOT/.local/trino-libs.lock"  # state dirs starting at once share one download
  flock 9
  if [ -f "$TRINO_LIBS/.complete-$TRINO_VERSION" ]; then return; fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  log "resolving Trino $TRINO_VERSION from Maven Central (first run only; ~210 MB, cached in ~/.m2)"
  rm -rf "$TRINO_LIBS"; mkdir -p "$TRINO_LIBS/packages"
  mvn -q -B -f "$ROOT/infra/engines/trino/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$TRINO_LIBS/packages" >"$ROOT/.local/trino-fetch.log" 2>&1 \
    || die "maven could not fetch Trino; see .local/trino-fetch.log"
  tar -xzf "$TRINO_LIBS/packages/trino-server-core-$TRINO_VERSION.tar.gz" -C "$TRINO_LIBS"
  # Plugins are directories plugin/<name>/ of jars, each loaded in a class loader of its own. The core package
  # brings a few; keep the password authenticators (the HTTPS listener's) and drop the rest, which add start time.
  local plugin
  for plugin in "$SERVER"/plugin/*/; do
    case "$(basename "$plugin")" in password-authenticators) ;; *) rm -rf "$plugin" ;; esac
  done
  # The memory connector's zip holds trino-memory-<version>/*.jar: exactly one plugin directory.
  python3 -m zipfile -e "$TRINO_LIBS/packages/trino-memory-$TRINO_VERSION.zip" "$SERVER/plugin"
  mv "$SERVER/plugin/trino-memory-$TRINO_VERSION" "$SERVER/plugin/memory"
  rm -rf "$TRINO_LIBS/packages"  # the archives stay in ~/.m2, the download cache
  touch "$TRINO_LIBS/.complete-$TRINO_VERSION"
}

ensure_tls() {  # a self-signed certificate for localhost and 127.0.0.1, and the password file
  local tls=$DIR/etc/tls
  if [ ! -f "$tls/server.pem" ]; then
    command -v openssl >/dev/null 2>&1 || apt_install openssl
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$tls/key.pem" -out "$tls/cert.pem" \
      >/dev/null 2>&1 || die "openssl could not make a certificate"
    cat "$tls/key.pem" "$tls/cert.pem" >"$tls/server.pem"
    chmod 600 "$tls/key.pem" "$tls/server.pem"
  fi
  # PBKDF2-HMAC-SHA1 as Trino's file authenticator reads it: iterations:salt:hash in lower-case hex.
  TRINO_USER=$TRINO_USER TRINO_PASSWORD=$TRINO_PASSWORD python3 -c '
import hashlib, os
salt = os.urandom(16)
digest = hashlib.pbkdf2_hmac("sha1", os.environ["TRINO_PASSWORD"].encode(), salt, 1000, 32)
print(os.environ["TRINO_USER"] + ":1000:" + salt.hex() + ":" + digest.hex())' >"$DIR/etc/password.db"
  chmod 600 "$DIR/etc/password.db"
}

write_config() {
  mkdir -p "$DIR/etc/catalog" "$DIR/data" "$DIR/logs"
  [ -f "$DIR/node-id" ] || python3 -c 'import uuid; print(uuid.uuid4())' >"$DIR/node-id"
  [ -f "$DIR/shared-secret" ] || { python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$DIR/shared-secret"; chmod 600 "$DIR/shared-secret"; }
  ensure_tls
  cat >"$DIR/etc/node.properties" <<EOF
node.environment=test
node.id=$(cat "$DIR/node-id")
node.data-dir=$DIR/data
node.bind-ip=127.0.0.1
node.internal-address=127.0.0.1
EOF
  cat >"$DIR/etc/jvm.config" <<EOF
-server
-Xmx$TRINO_HEAP
-XX:InitialRAMPercentage=5
-XX:+UseG1GC
-XX:G1HeapRegionSize=32M
-XX:+ExplicitGCInvokesConcurrent
-XX:+ExitOnOutOfMemoryError
-XX:-OmitStackTraceInFastThrow
-XX:ReservedCodeCacheSize=256M
-XX:PerMethodRecompilationCutoff=10000
-XX:PerBytecodeRecompilationCutoff=10000
-XX:TieredStopAtLevel=1
-Djdk.attach.allowAttachSelf=true
-Djdk.nio.maxCachedBufferSize=2000000
-Dfile.encoding=UTF-8
-XX:+EnableDynamicAgentLoading
--enable-native-access=ALL-UNNAMED
EOF
  cat >"$DIR/etc/config.properties" <<EOF
coordinator=true
node-scheduler.include-coordinator=true
http-server.http.port=$TRINO_PORT
http-server.https.enabled=true
http-server.https.port=$TRINO_HTTPS_PORT
http-server.https.keystore.path=$DIR/etc/tls/server.pem
http-server.authentication.type=PASSWORD
http-server.authentication.allow-insecure-over-http=true
internal-communication.shared-secret=$(cat "$DIR/shared-secret")
password-authenticator.config-files=$DIR/etc/password-authenticator.properties
discovery.uri=http://127.0.0.1:$TRINO_PORT
plugin.dir=$SERVER/plugin
catalog.config-dir=$DIR/etc/catalog
query.max-memory=1GB
query.max-memory-per-node=512MB
task.concurrency=2
EOF
  chmod 600 "$DIR/etc/config.properties"  # it holds the shared secret
  cat >"$DIR/etc/password-authenticator.properties" <<EOF
password-authenticator.name=file
file.password-file=$DIR/etc/password.db
EOF
  cat >"$DIR/etc/log.properties" <<EOF
io.trino=INFO
EOF
  printf 'connector.name=memory\nmemory.max-data-per-node=128MB\n' >"$DIR/etc/catalog/memory.properties"
  printf 'connector.name=memory\nmemory.max-data-per-node=64MB\n' >"$DIR/etc/catalog/scratch.properties"
}

trino_running() {  # the PID file names a live Trino server (not another process that got the number since)
  [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$(cat "$DIR/pid")/cmdline" 2>/dev/null | grep -q 'io.trino.server.TrinoServer'
}

ready() {  # the server has started (not just listening): /v1/info says "starting": false
  python3 - "$TRINO_PORT" <<'EOF' >/dev/null 2>&1
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v1/info", timeout=2) as response:
    sys.exit(1 if json.load(response).get("starting", True) else 0)
EOF
}

start_trino() {
  fetch_trino
  local java; java=$(find_java)
  if trino_running; then log "trino already running (pid $(cat "$DIR/pid"))"; return; fi
  port_free "$TRINO_PORT" || die "port $TRINO_PORT is taken by another process; set TRINO_PORT"
  port_free "$TRINO_HTTPS_PORT" || die "port $TRINO_HTTPS_PORT is taken by another process; set TRINO_HTTPS_PORT"
  write_config
  local jvm_options=() line
  while IFS= read -r line; do [ -n "$line" ] && jvm_options+=("$line"); done <"$DIR/etc/jvm.config"
  while IFS= read -r line; do [ -n "$line" ] && jvm_options+=("-D$line"); done <"$DIR/etc/node.properties"
  log "starting trino $TRINO_VERSION on 127.0.0.1:$TRINO_PORT (https: $TRINO_HTTPS_PORT) with $java"
  # What the airlift launcher runs (jvm.config, node.properties as system properties, config.properties), without
  # its daemon wrapper: the PID file names the JVM itself.
  (cd "$DIR" && exec nohup "$java" "${jvm_options[@]}" -Dconfig="$DIR/etc/config.properties" \
    -Dlog.levels-file="$DIR/etc/log.properties" \
    -cp "$SERVER/lib/*" io.trino.server.TrinoServer >"$DIR/logs/server.log" 2>&1) &
  echo $! >"$DIR/pid"
}

wait_trino() {
  local deadline=$((SECONDS + READY_TIMEOUT)) started=$SECONDS
  until ready; do
    trino_running || die "trino exited; see $DIR/logs/server.log"
    [ $SECONDS -lt $deadline ] || die "trino not ready after ${READY_TIMEOUT}s; see $DIR/logs/server.log"
    sleep 1
  done
  log "trino ready ($((SECONDS - started))s)"
}

stop_trino() {
  if trino_running; then
    local pid; pid=$(cat "$DIR/pid")
    log "stopping trino (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/pid"
}

case "${1:-}" in
  up)
    mkdir -p "$ROOT/.local" "$DIR"
    start_trino
    wait_trino
    ;;
  down) stop_trino ;;
  status)
    if trino_running; then echo "trino: running on 127.0.0.1:$TRINO_PORT (pid $(cat "$DIR/pid"))"; else echo "trino: stopped"; fi
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
