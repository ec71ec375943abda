#!/usr/bin/env bash
# Starts api, scheduler, connector, projector, relay and notifier as separate processes and watches them. A service
# that exits is restarted with backoff (1 s, doubling up to 30 s; back to 1 s once it stayed up a minute),
# and the script says so with the tail of its log. Ctrl-C (or 'make stop' from another shell) stops all.
#   infra/run_services.sh        start (in the foreground; safe to run again: a running stack is reported)
#   infra/run_services.sh stop   stop a running stack: the watching script first, then the services
# Environment: RUN_DIR (.local/dev/services: PID files and logs), STOP_INFRA (1: stopping also stops the
# local Kafka and PostgreSQL of infra/local.sh; 0 leaves them running), API_HOST, API_PORT, OPS_PORT (unset:
# each service's own default ops port, listed in the banner; 0: ephemeral ports, logged as `ops_serving`).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
RUN_DIR=${RUN_DIR:-$ROOT/.local/dev/services}
STOP_INFRA=${STOP_INFRA:-1}
SERVICES=(api scheduler connector projector relay notifier)
MAX_RESTART_DELAY=30
STABLE_AFTER=60  # seconds up after which a crash counts as the first one again
mkdir -p "$RUN_DIR"
trap "" PIPE  # a closed terminal or pipe must not kill the script before it stopped everything

alive() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

stop_services() {
  for s in "${SERVICES[@]}"; do
    if alive "$s"; then kill -TERM "$(cat "$RUN_DIR/$s.pid")" 2>/dev/null || true; fi
  done
  # Up to 30 s: longer than the connector's drain (CONNECTOR_SHUTDOWN_GRACE_SECONDS, 10 s by default).
  for s in "${SERVICES[@]}"; do
    for _ in $(seq 1 150); do alive "$s" || break; sleep 0.2; done
    if alive "$s"; then kill -KILL "$(cat "$RUN_DIR/$s.pid")" 2>/dev/null || true; fi
    rm -f "$RUN_DIR/$s.pid"
  done
}

stop_everything() {
  stop_services
  if [ "$STOP_INFRA" = 1 ]; then bash "$ROOT/infra/local.sh" down; fi
  rm -f "$RUN_DIR/supervisor.pid"
}

if [ "${1:-}" = stop ]; then
  # The watching script first: otherwise it would restart what is being stopped.
  if alive supervisor; then
    pid=$(cat "$RUN_DIR/supervisor.pid")
    kill -TERM "$pid" 2>/dev/null || true
    # Done when it removed its PID file (it may linger as a zombie until its parent reaps it).
    for _ in $(seq 1 150); do [ -f "$RUN_DIR/supervisor.pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  stop_services
  rm -f "$RUN_DIR/supervisor.pid"
  echo "services stopped"
  exit 0
fi

URL="http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}"
if alive supervisor || alive api; then
  echo "The stack is already running: $URL (stop it with 'make stop')."
  exit 0
fi
stop_services  # leftovers of a crashed run
if (exec 3<>"/dev/tcp/${API_HOST:-127.0.0.1}/${API_PORT:-8080}") 2>/dev/null; then
  echo "Port ${API_PORT:-8080} is taken by another process; stop it or choose another port: API_PORT=8090 make run"
  exit 1
fi

declare -A started_at=() restart_at=() delay=()
start() {
  "$PY" -m "services.$1" >>"$RUN_DIR/$1.log" 2>&1 &
  echo $! >"$RUN_DIR/$1.pid"
  started_at[$1]=$SECONDS
}

cd "$ROOT"
echo $$ >"$RUN_DIR/supervisor.pid"
for s in "${SERVICES[@]}"; do start "$s"; done
trap 'echo; echo "stopping..."; stop_everything; exit 0' INT TERM

for _ in $(seq 1 300); do
  curl -fsS "$URL/health" >/dev/null 2>&1 && break
  alive api || { echo "the api exited; see $RUN_DIR/api.log"; tail -20 "$RUN_DIR/api.log"; stop_everything; exit 1; }
  sleep 0.2
done

# The services' own defaults (OPS_PORT of services/*/settings.py): one port per process on one machine.
if [ -n "${OPS_PORT:-}" ]; then
  OPS="port $OPS_PORT of every service (0: ephemeral; the 'ops_serving' line of each log)"
else
  OPS="http://127.0.0.1:{9101 api, 9102 scheduler, 9103 connector, 9104 projector, 9105 relay, 9106 notifier}"
fi

cat <<BANNER

  Ingestion control plane is running.
    API:           $URL   (OpenAPI: $URL/openapi.yaml)
    Authenticate:  -H "x-api-key: ${BOOTSTRAP_API_KEY:-<set BOOTSTRAP_API_KEY>}"   (or Authorization: Bearer ...)
    Try:           curl -s -H "x-api-key: ${BOOTSTRAP_API_KEY:-}" $URL/api/integrations
    Logs:          $RUN_DIR/{api,scheduler,connector,projector,relay,notifier}.log
    Ops:           /livez /readyz /metrics on $OPS
  A service that exits is restarted. Ctrl-C (or 'make stop' from another shell) stops everything.

BANNER

# Watch: a service that exited is restarted once its backoff delay has passed.
while true; do
  for s in "${SERVICES[@]}"; do
    if [ -n "${restart_at[$s]:-}" ]; then
      if [ "$SECONDS" -ge "${restart_at[$s]}" ]; then
        unset "restart_at[$s]"
        start "$s"
        echo "[run] $s restarted (pid $(cat "$RUN_DIR/$s.pid"))"
      fi
      continue
    fi
    alive "$s" && continue
    wait "$(cat "$RUN_DIR/$s.pid")" 2>/dev/null
    code=$?
    up=$((SECONDS - started_at[$s]))
    if [ "$up" -ge "$STABLE_AFTER" ]; then delay[$s]=1; fi
    wait_s=${delay[$s]:-1}
    echo "[run] $s exited (code $code) after ${up}s; restarting it in ${wait_s}s. Last lines of $RUN_DIR/$s.log:"
    tail -n 20 "$RUN_DIR/$s.log" | sed 's/^/[run]   /'
    restart_at[$s]=$((SECONDS + wait_s))
    delay[$s]=$((wait_s * 2 > MAX_RESTART_DELAY ? MAX_RESTART_DELAY : wait_s * 2))
  done
  sleep 1
done
