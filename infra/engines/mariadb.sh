#!/usr/bin/env bash
# A real MariaDB server (Debian's mariadb-server) for the MySQL/MariaDB source tests: its own mariadbd process on
# a project-local data dir, on loopback only. Never the system service, never /var/lib/mysql.
#
#   infra/engines/mariadb.sh up      install what is missing, start, wait until ready (idempotent)
#   infra/engines/mariadb.sh down    stop the server this script started (by its PID file)
#   infra/engines/mariadb.sh status  print whether it runs
#
# Environment: STATE_DIR (default .local/test; state in $STATE_DIR/engines/mariadb), MARIADB_PORT (13306),
# MARIADB_PASSWORD (ingest). Login: user `root` with MARIADB_PASSWORD, over TCP from 127.0.0.1 (root@127.0.0.1,
# root@::1) and over the socket (root@localhost); root has every privilege, the tests create narrower users.
# TLS: offered (not required) with a certificate for localhost/127.0.0.1 from a CA of its own, $DIR/tls/ca.pem.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE_DIR=${STATE_DIR:-$ROOT/.local/test}
case "$STATE_DIR" in /*) ;; *) STATE_DIR=$ROOT/$STATE_DIR ;; esac
MARIADB_PORT=${MARIADB_PORT:-13306}
MARIADB_PASSWORD=${MARIADB_PASSWORD:-ingest}
DIR=$STATE_DIR/engines/mariadb
DATA=$DIR/data
TLS=$DIR/tls
SOCKET=$DIR/mariadbd.sock
if [ ${#SOCKET} -gt 100 ]; then SOCKET=/tmp/mariadb-$MARIADB_PORT.sock; fi  # sun_path holds 108 bytes at most
START_TIMEOUT=${MARIADB_START_TIMEOUT:-90}

log() { printf '[mariadb] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
NAME=mariadb
PORT=$MARIADB_PORT
STOP_WAIT_S=30
# shellcheck source=infra/engines/lib.sh
. "$ROOT/infra/engines/lib.sh"

port_free() {  # true when nothing listens on 127.0.0.1:$1
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

apt_install() {
  [ "$(id -u)" = 0 ] || die "$* missing; install it (sudo apt-get install $*) and run again"
  log "installing $* from Debian packages"
  # mariadb-server would start (and enable) the system service on :3306 over /var/lib/mysql; we run our own
  # server, so forbid service starts while it installs (Debian's policy-rc.d), unless the machine has a policy.
  local policy=/usr/sbin/policy-rc.d created=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; created=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt_retry update
  apt_retry install --no-install-recommends "$@"
  if [ -n "$created" ]; then rm -f "$policy"; trap - EXIT; fi
}

apt_retry() {  # other engines' scripts may run apt at the same time (infra/engines.sh starts them in parallel)
  local attempt
  for attempt in $(seq 1 6); do
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -qq "$@" >"$DIR/apt.log" 2>&1 && return
    log "apt-get $1 failed (attempt $attempt; another apt running?), retrying"
    sleep 5
  done
  die "apt-get $* failed; see $DIR/apt.log"
}

install_packages() {
  local missing=()
  command -v mariadbd >/dev/null 2>&1 && command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
  command -v mariadb-admin >/dev/null 2>&1 || missing+=(mariadb-client)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  if [ ${#missing[@]} -gt 0 ]; then mkdir -p "$DIR"; apt_install "${missing[@]}"; fi
  command -v mariadbd >/dev/null 2>&1 || die "mariadb-server installed, but mariadbd is not on PATH"
}

ensure_tls() {  # a CA of our own and a server certificate for localhost / 127.0.0.1, made once
  [ -f "$TLS/server.pem" ] && return
  log "making a test CA and server certificate in $TLS"
  local tmp=$DIR/tls.tmp
  rm -rf "$tmp"; mkdir -p "$tmp"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ingestion test MariaDB CA" \
      -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tmp/server-key.pem" -out "$tmp/server.csr"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
      >"$tmp/server.ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" -CAcreateserial \
      -days 3650 -extfile "$tmp/server.ext" -out "$tmp/server.pem"
  } >"$DIR/tls.log" 2>&1 || die "openssl could not make the test certificates; see $DIR/tls.log"
  chmod 600 "$tmp/ca-key.pem" "$tmp/server-key.pem"
  if [ "$(id -u)" = 0 ]; then chown mysql "$tmp/server-key.pem"; fi
  mv "$tmp" "$TLS"
}

as_owner() {  # run as the account that owns the data dir: `mysql` when we are root, else ourselves
  if [ "$(id -u)" = 0 ]; then runuser -u mysql -- "$@"; else "$@"; fi
}

admin() {  # mariadb-admin over TCP as root, the way the tests log in
  MYSQL_PWD=$MARIADB_PASSWORD mariadb-admin --no-defaults --protocol=tcp -h 127.0.0.1 -P "$MARIADB_PORT" -u root \
    --connect-timeout=2 "$@"
}

initialise() {  # a fresh data dir, and the SQL that sets up root at its first start
  [ -f "$DIR/.initialised" ] && return
  log "initialising a data dir in $DATA"
  rm -rf "$DATA"; mkdir -p "$DATA"
  if [ "$(id -u)" = 0 ]; then chown mysql "$DIR" "$DATA"; fi
  as_owner mariadb-install-db --no-defaults --datadir="$DATA" --auth-root-authentication-method=normal \
    --skip-test-db >"$DIR/install-db.log" 2>&1 || die "mariadb-install-db failed; see $DIR/install-db.log"
  # root gets a password, and the loopback addresses (--skip-name-resolve: a TCP client is 127.0.0.1 or ::1,
  # never `localhost`). Run by the server itself before it accepts connections, at this first start only.
  local quoted=${MARIADB_PASSWORD//\'/\'\'}
  local user
  : >"$DIR/init.sql"
  for user in "'root'@'localhost'" "'root'@'127.0.0.1'" "'root'@'::1'"; do
    printf "CREATE USER IF NOT EXISTS %s;\nALTER USER %s IDENTIFIED BY '%s';\n" "$user" "$user" "$quoted" \
      >>"$DIR/init.sql"
    printf "GRANT ALL PRIVILEGES ON *.* TO %s WITH GRANT OPTION;\n" "$user" >>"$DIR/init.sql"
  done
  chmod 600 "$DIR/init.sql"
  if [ "$(id -u)" = 0 ]; then chown mysql "$DIR/init.sql"; fi
}

start_server() {
  mkdir -p "$DIR"
  if running; then log "already running (pid $(cat "$DIR/pid"))"; return; fi
  port_free "$MARIADB_PORT" || die "port $MARIADB_PORT is taken by another process; set MARIADB_PORT"
  initialise
  ensure_tls
  if [ "$(id -u)" = 0 ]; then chown mysql "$DIR"; fi
  log "starting mariadbd on 127.0.0.1:$MARIADB_PORT"
  # --no-defaults: nothing from /etc/mysql (the system service's port, socket, data dir) applies here.
  local extra=(); if [ "$(id -u)" = 0 ]; then extra=(--user=mysql); fi
  if [ ! -f "$DIR/.initialised" ]; then extra+=(--init-file="$DIR/init.sql"); fi
  nohup mariadbd --no-defaults "${extra[@]}" --datadir="$DATA" --socket="$SOCKET" --pid-file="$DIR/mariadbd.pid" \
    --port="$MARIADB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --log-error="$DIR/mariadbd.log" \
    --innodb-buffer-pool-size=64M --performance-schema=OFF --max-connections=200 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --ssl-ca="$TLS/ca.pem" --ssl-cert="$TLS/server.pem" --ssl-key="$TLS/server-key.pem" >>"$DIR/mariadbd.out" 2>&1 &
  echo $! >"$DIR/pid"
}

wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  until admin ping >/dev/null 2>&1; do
    running || die "mariadbd exited; see $DIR/mariadbd.log"
    [ $SECONDS -lt $deadline ] || die "mariadbd not ready on 127.0.0.1:$MARIADB_PORT after ${START_TIMEOUT}s" \
      "(a different MARIADB_PASSWORD for this data dir?); see $DIR/mariadbd.log"
    sleep 0.5
  done
  if [ ! -f "$DIR/.initialised" ]; then touch "$DIR/.initialised"; rm -f "$DIR/init.sql"; fi
  log "ready on 127.0.0.1:$MARIADB_PORT"
}

up() {
  install_packages
  start_server
  wait_ready
}

engine_main "$@"
