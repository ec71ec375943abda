#!/usr/bin/env bash
# The source engines the platform tests crawl (issue 10): one script each in infra/engines/<engine>.sh, which
# installs what is missing (apt, Maven, a venv of its own), starts the engine on loopback and waits until it answers.
#
#   infra/engines.sh up      start every engine, in parallel; one that fails is reported, the others still start
#   infra/engines.sh down    stop every engine this checkout started (by PID file)
#   infra/engines.sh status
#
# Environment: ENGINES (default: all of them), STATE_DIR, and each engine's port variable (see its script).
# `make test` runs this; `make run` needs none of it.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Every script in infra/engines but lib.sh (what they share).
ENGINES=${ENGINES:-$(cd "$ROOT/infra/engines" && ls -- *.sh | grep -vx lib.sh | sed 's/\.sh$//' | tr '\n' ' ')}
command=${1:-status}
logs=${STATE_DIR:-$ROOT/.local/test}
case "$logs" in /*) ;; *) logs=$ROOT/$logs ;; esac
mkdir -p "$logs/engines"

case "$command" in
  up)
    pids=()
    for engine in $ENGINES; do
      bash "$ROOT/infra/engines/$engine.sh" up >"$logs/engines/$engine.up.log" 2>&1 &
      pids+=("$!")
    done
    failed=()
    i=0
    for engine in $ENGINES; do
      if wait "${pids[$i]}"; then
        printf '[engines] %s ready\n' "$engine" >&2
      else
        failed+=("$engine")
        printf '[engines] %s did not start; its log (%s):\n' "$engine" "$logs/engines/$engine.up.log" >&2
        tail -n 20 "$logs/engines/$engine.up.log" | sed 's/^/    /' >&2
      fi
      i=$((i + 1))
    done
    # The platform tests say which engine is missing (and fail in CI): the rest of the suite still runs.
    [ ${#failed[@]} -eq 0 ] || printf '[engines] not started: %s\n' "${failed[*]}" >&2
    ;;
  down|status)
    for engine in $ENGINES; do bash "$ROOT/infra/engines/$engine.sh" "$command" || true; done
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
