#!/usr/bin/env bash
# A BigQuery emulator for the BigQuery source tests: bqemulator serves BigQuery's REST API (datasets, tables, query
# jobs, INFORMATION_SCHEMA) over DuckDB to google-cloud-bigquery, unchanged but for the endpoint. On loopback only,
# data in memory (gone when it stops; the tests create what they crawl through the same server), any project id.
#
#   infra/engines/bqemulator.sh up      install what is missing, start, wait until ready (idempotent)
#   infra/engines/bqemulator.sh down    stop the server this script started (by its PID file)
#   infra/engines/bqemulator.sh status  print whether it runs
#
# Environment: STATE_DIR (default .local/test; state in $STATE_DIR/engines/bqemulator), BQEMULATOR_PORT (19050, the
# REST port; its gRPC Storage API takes a free port, the source does not use it). In a venv of its own
# (.local/venvs/bqemulator): bqemulator pins a sqlglot that fakesnow's does not allow.
#
# Offline: bqemulator runs `INSTALL spatial; LOAD spatial` at start and fails without the extension, which DuckDB
# would download from its own extension site (unreachable here). The PyPI wheel duckdb-extension-spatial carries
# that extension for exactly one duckdb version, so duckdb is pinned to it and the extension is installed from the
# wheel's file into a DuckDB home of the venv's own; the server runs with HOME there, and its INSTALL is a no-op.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE_DIR=${STATE_DIR:-$ROOT/.local/test}
case "$STATE_DIR" in /*) ;; *) STATE_DIR=$ROOT/$STATE_DIR ;; esac
BQEMULATOR_PORT=${BQEMULATOR_PORT:-19050}
DIR=$STATE_DIR/engines/bqemulator
VENV=$ROOT/.local/venvs/bqemulator
DUCKDB_HOME=$VENV/duckdb-home
DUCKDB_VERSION=1.5.5  # the one duckdb-extension-spatial is built for
# numpy: bqemulator registers numpy-backed DuckDB functions at start but does not declare it.
REQUIREMENTS="bqemulator==1.4.0 duckdb==$DUCKDB_VERSION duckdb-extension-spatial==$DUCKDB_VERSION numpy"
START_TIMEOUT=${BQEMULATOR_START_TIMEOUT:-90}

log() { printf '[bqemulator] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
NAME=bqemulator
PORT=$BQEMULATOR_PORT
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

install_spatial() {  # copy the wheel's extension into $DUCKDB_HOME/.duckdb/extensions/v<version>/<platform>/
  HOME=$DUCKDB_HOME "$VENV/bin/python" - <<'EOF'
import os, duckdb, duckdb_extension_spatial
path = os.path.join(os.path.dirname(duckdb_extension_spatial.__file__), "extensions", "v" + duckdb.__version__,
                    "spatial.duckdb_extension")
connection = duckdb.connect()
connection.execute(f"INSTALL '{path}'")
connection.execute("LOAD spatial")
EOF
}

install_venv() {  # once per set of requirements; a half-made venv (no stamp) is made again
  if [ -f "$VENV/.complete" ] && [ "$(cat "$VENV/.complete")" = "$REQUIREMENTS" ]; then return; fi
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  log "installing $REQUIREMENTS into $VENV"
  rm -rf "$VENV"; mkdir -p "$(dirname "$VENV")" "$DIR" "$DUCKDB_HOME"
  if ! python3 -m venv "$VENV" >"$DIR/venv.log" 2>&1; then
    rm -rf "$VENV"
    apt_install python3-venv  # Debian's python3 makes venvs only with it
    mkdir -p "$DUCKDB_HOME"
    python3 -m venv "$VENV" >"$DIR/venv.log" 2>&1 || die "python3 -m venv failed; see $DIR/venv.log"
  fi
  # shellcheck disable=SC2086  # the requirements are words
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check $REQUIREMENTS >>"$DIR/venv.log" 2>&1 \
    || die "pip could not install $REQUIREMENTS; see $DIR/venv.log"
  install_spatial >>"$DIR/venv.log" 2>&1 || die "the spatial extension did not install from its wheel; see $DIR/venv.log"
  printf '%s' "$REQUIREMENTS" >"$VENV/.complete"
}

start_server() {
  mkdir -p "$DIR"
  if running; then log "already running (pid $(cat "$DIR/pid"))"; return; fi
  port_free "$BQEMULATOR_PORT" || die "port $BQEMULATOR_PORT is taken by another process; set BQEMULATOR_PORT"
  log "starting bqemulator on 127.0.0.1:$BQEMULATOR_PORT"
  # Avro's extension would be fetched from the network (best effort, but slow to fail): the tests load no Avro.
  HOME=$DUCKDB_HOME BQEMU_ENABLE_FORMAT_EXTENSIONS=false BQEMU_LOG_LEVEL=warning \
    nohup "$VENV/bin/bqemulator" start --rest-host 127.0.0.1 --rest-port "$BQEMULATOR_PORT" \
    --grpc-host 127.0.0.1 --grpc-port 0 --ephemeral --no-admin >"$DIR/bqemulator.log" 2>&1 &
  echo $! >"$DIR/pid"
}

ready() {  # the readiness probe answers: DuckDB (with spatial) and the catalog are up
  "$VENV/bin/python" - "$BQEMULATOR_PORT" <<'EOF' >/dev/null 2>&1
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2) as response:
    sys.exit(0 if json.load(response).get("status") == "ok" else 1)
EOF
}

wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  until ready; do
    running || die "bqemulator exited; see $DIR/bqemulator.log"
    [ $SECONDS -lt $deadline ] || die "bqemulator not ready on 127.0.0.1:$BQEMULATOR_PORT after ${START_TIMEOUT}s;" \
      "see $DIR/bqemulator.log"
    sleep 0.5
  done
  log "ready on 127.0.0.1:$BQEMULATOR_PORT"
}

up() {
  install_venv
  start_server
  wait_ready
}

engine_main "$@"
