# What every engine script shares (sourced, not run): its process by PID file, stopping it, and the command line.
# The script sets NAME (for messages), DIR (its state directory, holding `pid`), PORT, and defines `up`; it may set
# STOP_WAIT_S (how long a polite stop may take before kill -9; default 10) and STOP_GROUP=1 (the PID leads a
# process group of its own, started with setsid: the whole group is stopped).

running() { [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; }

stop_server() {
  if running; then
    local pid target; pid=$(cat "$DIR/pid")
    target=$pid
    [ "${STOP_GROUP:-0}" = 1 ] && target=-$pid
    log "stopping $NAME (pid $pid)"
    kill -- "$target" 2>/dev/null || kill "$pid" 2>/dev/null || true
    local tries=$(( ${STOP_WAIT_S:-10} * 2 ))
    for _ in $(seq 1 "$tries"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 -- "$target" 2>/dev/null || true
  fi
  rm -f "$DIR/pid"
}

engine_main() {
  case "${1:-}" in
    up) up ;;
    down) stop_server ;;
    status)
      if running; then echo "$NAME: running on 127.0.0.1:$PORT (pid $(cat "$DIR/pid"))"; else echo "$NAME: stopped"; fi
      ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
  esac
}
