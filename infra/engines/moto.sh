#!/usr/bin/env bash
# The AWS Glue Data Catalog emulator for the Glue source's tests: moto's server (moto_server), which speaks
# the Glue JSON API to botocore/aiobotocore, on loopback, in a venv of its own.
#
#   infra/engines/moto.sh up      install what is missing, start it, wait until it answers (idempotent)
#   infra/engines/moto.sh down    stop it (only the process this script started, by PID file)
#   infra/engines/moto.sh status  print whether it runs
#
# Environment: STATE_DIR (default .local/test), MOTO_PORT (15000), MOTO_PYTHON (python3: the interpreter the
# venv is made from). The venv is .local/venvs/moto (shared by every state dir: it never changes per instance).
# Request signatures are not checked until a test turns moto's IAM checks on (POST /moto-api/reset-auth).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE_DIR=${STATE_DIR:-$ROOT/.local/test}
case "$STATE_DIR" in /*) ;; *) STATE_DIR=$ROOT/$STATE_DIR ;; esac
MOTO_PORT=${MOTO_PORT:-15000}
MOTO_PYTHON=${MOTO_PYTHON:-python3}
MOTO_VERSION=5.2.5
VENV=$ROOT/.local/venvs/moto
DIR=$STATE_DIR/engines/moto

log() { printf '[moto] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
NAME=moto
PORT=$MOTO_PORT
STOP_GROUP=1
# shellcheck source=infra/engines/lib.sh
. "$ROOT/infra/engines/lib.sh"

port_free() {  # true when nothing listens on 127.0.0.1:$1
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

answers() {  # moto's own API answers on the port: it is moto, and it is ready
  "$VENV/bin/python" - "$MOTO_PORT" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json", timeout=2).read()
EOF
}

ensure_venv() {
  if [ -f "$VENV/.complete-$MOTO_VERSION" ]; then return; fi
  command -v "$MOTO_PYTHON" >/dev/null 2>&1 || apt_install python3
  if ! "$MOTO_PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then apt_install python3-venv; fi
  log "installing moto[glue,iam,server]==$MOTO_VERSION into $VENV (first run only)"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")" "$ROOT/.local"
  "$MOTO_PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "moto[glue,iam,server]==$MOTO_VERSION" \
    >"$ROOT/.local/moto-install.log" 2>&1 || die "pip could not install moto; see .local/moto-install.log"
  touch "$VENV/.complete-$MOTO_VERSION"
}

apt_install() {
  [ "$(id -u)" = 0 ] || die "missing $*; install it (e.g. sudo apt-get install $*) and run again"
  log "installing $* from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

start() {
  ensure_venv
  mkdir -p "$DIR"
  if running; then log "already running (pid $(cat "$DIR/pid"))"; wait_ready; return; fi
  port_free "$MOTO_PORT" || die "port $MOTO_PORT is taken by another process; set MOTO_PORT"
  log "starting moto_server on 127.0.0.1:$MOTO_PORT"
  # setsid: its own process group, so `down` can end it and any worker it forks, and nothing else.
  setsid nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$DIR/moto.log" 2>&1 &
  echo $! >"$DIR/pid"
  wait_ready
}

wait_ready() {
  local deadline=$((SECONDS + 60))
  until answers; do
    running || die "moto_server exited; see $DIR/moto.log"
    [ $SECONDS -lt $deadline ] || die "moto_server not ready after 60s; see $DIR/moto.log"
    sleep 0.5
  done
  log "ready on 127.0.0.1:$MOTO_PORT"
}

up() {
  start
}

engine_main "$@"
