#!/usr/bin/env bash
# A Snowflake emulator for the Snowflake source tests: fakesnow's HTTP server (Snowflake's REST wire protocol over
# DuckDB), which snowflake-connector-python logs in to and queries like Snowflake. On loopback only, data in memory
# (gone when it stops; the tests create what they crawl through the same server).
#
#   infra/engines/fakesnow.sh up      install what is missing, start, wait until a login succeeds (idempotent)
#   infra/engines/fakesnow.sh down    stop the server this script started (by its PID file)
#   infra/engines/fakesnow.sh status  print whether it runs
#
# Environment: STATE_DIR (default .local/test; state in $STATE_DIR/engines/fakesnow), FAKESNOW_PORT (18085),
# FAKESNOW_PASSWORD (fakesnow-test: the only password a login may use; any user and account). The server runs from
# infra/engines/fakesnow/server.py, which closes three gaps of `fakesnow -s` to Snowflake (see there), in a venv of
# its own (.local/venvs/fakesnow: fakesnow pins the 4.x connector it imports; the project's client is 5.x).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE_DIR=${STATE_DIR:-$ROOT/.local/test}
case "$STATE_DIR" in /*) ;; *) STATE_DIR=$ROOT/$STATE_DIR ;; esac
FAKESNOW_PORT=${FAKESNOW_PORT:-18085}
FAKESNOW_PASSWORD=${FAKESNOW_PASSWORD:-fakesnow-test}
DIR=$STATE_DIR/engines/fakesnow
VENV=$ROOT/.local/venvs/fakesnow
# server.py reaches into fakesnow's server module: a new fakesnow release is taken on purpose, not by accident.
REQUIREMENTS="fakesnow[server]==0.12.1 snowflake-connector-python<5"
START_TIMEOUT=${FAKESNOW_START_TIMEOUT:-60}

log() { printf '[fakesnow] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
NAME=fakesnow
PORT=$FAKESNOW_PORT
# shellcheck source=infra/engines/lib.sh
. "$ROOT/infra/engines/lib.sh"

port_free() {  # true when nothing listens on 127.0.0.1:$1
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

apt_install() {
  [ "$(id -u)" = 0 ] || die "$* missing; install it (sudo apt-get install $*) and run again"
  log "installing $* from Debian packages"
  local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -qq)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >/dev/null
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "$@" >/dev/null
}

install_venv() {  # once per set of requirements; a half-made venv (no stamp) is made again
  if [ -f "$VENV/.complete" ] && [ "$(cat "$VENV/.complete")" = "$REQUIREMENTS" ]; then return; fi
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  log "installing $REQUIREMENTS into $VENV"
  rm -rf "$VENV"; mkdir -p "$(dirname "$VENV")" "$DIR"
  if ! python3 -m venv "$VENV" >"$DIR/venv.log" 2>&1; then
    rm -rf "$VENV"
    apt_install python3-venv  # Debian's python3 makes venvs only with it
    python3 -m venv "$VENV" >"$DIR/venv.log" 2>&1 || die "python3 -m venv failed; see $DIR/venv.log"
  fi
  # shellcheck disable=SC2086  # the requirements are words
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check $REQUIREMENTS >>"$DIR/venv.log" 2>&1 \
    || die "pip could not install $REQUIREMENTS; see $DIR/venv.log"
  printf '%s' "$REQUIREMENTS" >"$VENV/.complete"
}

start_server() {
  mkdir -p "$DIR"
  if running; then log "already running (pid $(cat "$DIR/pid"))"; return; fi
  port_free "$FAKESNOW_PORT" || die "port $FAKESNOW_PORT is taken by another process; set FAKESNOW_PORT"
  log "starting fakesnow on 127.0.0.1:$FAKESNOW_PORT"
  FAKESNOW_PASSWORD=$FAKESNOW_PASSWORD nohup "$VENV/bin/python" "$ROOT/infra/engines/fakesnow/server.py" \
    --host 127.0.0.1 --port "$FAKESNOW_PORT" >"$DIR/fakesnow.log" 2>&1 &
  echo $! >"$DIR/pid"
}

logs_in() {  # a login with the password succeeds: the server answers Snowflake's login request
  FAKESNOW_PASSWORD=$FAKESNOW_PASSWORD "$VENV/bin/python" - "$FAKESNOW_PORT" <<'EOF' >/dev/null 2>&1
import json, os, sys, urllib.request
body = {"data": {"LOGIN_NAME": "probe", "PASSWORD": os.environ["FAKESNOW_PASSWORD"], "SESSION_PARAMETERS": {}}}
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/session/v1/login-request",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=2) as response:
    sys.exit(0 if json.load(response)["success"] else 1)
EOF
}

wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  until logs_in; do
    running || die "fakesnow exited; see $DIR/fakesnow.log"
    [ $SECONDS -lt $deadline ] || die "fakesnow not ready on 127.0.0.1:$FAKESNOW_PORT after ${START_TIMEOUT}s" \
      "(another FAKESNOW_PASSWORD?); see $DIR/fakesnow.log"
    sleep 0.5
  done
  log "ready on 127.0.0.1:$FAKESNOW_PORT"
}

up() {
  install_venv
  start_server
  wait_ready
}

engine_main "$@"
