#!/usr/bin/env bash
# Starts api, scheduler, connector and projector as separate processes and waits; Ctrl-C stops them.
#   infra/run_services.sh        start (in the foreground; safe to run again: a running stack is reported)
#   infra/run_services.sh stop   stop the processes started by a previous run (by PID file)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
RUN_DIR=$ROOT/.local/dev/services
SERVICES=(api scheduler connector projector relay)
mkdir -p "$RUN_DIR"
trap "" PIPE  # a closed terminal or pipe must not kill the script before it stopped everything

alive() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

stop_services() {
  for s in "${SERVICES[@]}"; do
    if alive "$s"; then kill -TERM "$(cat "$RUN_DIR/$s.pid")" 2>/dev/null || true; fi
  done
  for s in "${SERVICES[@]}"; do
    for _ in $(seq 1 50); do alive "$s" || break; sleep 0.2; done
    if alive "$s"; then kill -KILL "$(cat "$RUN_DIR/$s.pid")" 2>/dev/null || true; fi
    rm -f "$RUN_DIR/$s.pid"
  done
}

if [ "${1:-}" = stop ]; then stop_services; echo "services stopped"; exit 0; fi

URL="http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}"
if alive api; then
  echo "The stack is already running: $URL (stop it with 'make stop')."
  exit 0
fi
stop_services  # leftovers of a crashed run
if (exec 3<>"/dev/tcp/${API_HOST:-127.0.0.1}/${API_PORT:-8080}") 2>/dev/null; then
  echo "Port ${API_PORT:-8080} is taken by another process; stop it or choose another port: API_PORT=8090 make run"
  exit 1
fi

cd "$ROOT"
for s in "${SERVICES[@]}"; do
  "$PY" -m "services.$s" >>"$RUN_DIR/$s.log" 2>&1 &
  echo $! >"$RUN_DIR/$s.pid"
done
trap 'echo; echo "stopping..."; stop_services; bash infra/local.sh down; exit 0' INT TERM

for _ in $(seq 1 100); do
  curl -fsS "$URL/health" >/dev/null 2>&1 && break
  alive api || { echo "the api exited; see $RUN_DIR/api.log"; tail -20 "$RUN_DIR/api.log"; stop_services; exit 1; }
  sleep 0.2
done

cat <<EOF

  Ingestion control plane is running.
    API:           $URL   (OpenAPI: $URL/openapi.yaml)
    Authenticate:  -H "x-api-key: ${BOOTSTRAP_API_KEY:-<set BOOTSTRAP_API_KEY>}"   (or Authorization: Bearer ...)
    Try:           curl -s -H "x-api-key: ${BOOTSTRAP_API_KEY:-}" $URL/api/integrations
    Logs:          $RUN_DIR/{api,scheduler,connector,projector,relay}.log
  Ctrl-C (or 'make stop' from another shell) stops everything.

EOF

while true; do
  for s in "${SERVICES[@]}"; do
    alive "$s" || { echo "$s exited; see $RUN_DIR/$s.log"; tail -20 "$RUN_DIR/$s.log"; stop_services; bash infra/local.sh down; exit 1; }
  done
  sleep 1
done
