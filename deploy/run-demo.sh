#!/usr/bin/env bash
# make run / make stop: one node on the embedded default (tcp://127.0.0.1:7400)
# with its data under build/run, and a short demo through memcoordctl.
#   deploy/run-demo.sh        start (if not running) and run the demo
#   deploy/run-demo.sh stop   stop the node started here, by its PID
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
RUN_DIR=${RUN_DIR:-$BUILD/run}
ENDPOINT=${MEMCOORD_ENDPOINT:-tcp://127.0.0.1:7400}
PIDFILE=$RUN_DIR/memcoord.pid
LOG=$RUN_DIR/memcoord.log
CTL="$BUILD/memcoordctl --endpoints $ENDPOINT"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

stop() {
  if ! running; then echo "memcoord is not running"; rm -f "$PIDFILE"; return 0; fi
  pid=$(cat "$PIDFILE")
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "memcoord (pid $pid) did not stop in 10 s; sending SIGKILL"; kill -KILL "$pid"
  fi
  rm -f "$PIDFILE"
  echo "memcoord (pid $pid) stopped"
}

start() {
  mkdir -p "$RUN_DIR"
  if running; then echo "memcoord already running (pid $(cat "$PIDFILE"))"; return 0; fi
  nohup "$BUILD/memcoord" --data "$RUN_DIR/data" --listen "$ENDPOINT" \
    >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  # Ready when a read is answered (NOT_FOUND is an answer), within 30 s.
  deadline=$((SECONDS + 30))
  while :; do
    # memcoordctl exits 1 for NOT_FOUND: look at what it said, not its code.
    probe=$($CTL --timeout 1s get memcoord/ready-probe 2>&1 || true)
    case "$probe" in *NOT_FOUND*) break ;; esac
    if ! running || [ $SECONDS -ge $deadline ]; then
      echo "memcoord did not start; the end of $LOG:"; tail -20 "$LOG"; exit 1
    fi
    sleep 0.1
  done
  echo "memcoord running (pid $(cat "$PIDFILE")), listening on $ENDPOINT, data in $RUN_DIR/data"
}

# Print the command as one would type it (quoted), then run it.
show() {
  echo; printf '$ memcoordctl'; printf " %q" "$@"; echo
  $CTL "$@" || echo "(exit code $?)"
}

demo() {
  echo; echo "== demo: agents sharing memory through memcoord"
  $CTL -n demo del swarm/researcher/status >/dev/null 2>&1 || true
  show -n demo put swarm/researcher/status "collecting sources" --expect-version 0
  show -n demo put swarm/researcher/status "draft ready" --expect-version 1
  echo; echo "# a second agent still holds version 1: its compare-and-swap is refused"
  show -n demo put swarm/researcher/status "stale update" --expect-version 1
  show -n demo get swarm/researcher/status --meta
  show -n demo put swarm/coder/scratch "trying approach B" --tier short --ttl 5m
  show -n demo put swarm/lessons/retries "use CAS on shared records" --tier long
  show -n demo ls swarm/
  show -n demo -o json get swarm/coder/scratch
  show status
  cat <<TXT

memcoord is running. Try:
  export MEMCOORD_ENDPOINTS=$ENDPOINT
  $BUILD/memcoordctl -n myteam put handoff/step1 done
  $BUILD/memcoordctl -n myteam get handoff/step1 --meta
  $BUILD/memcoordctl --help
Stop it with: make stop    (log: $LOG)
TXT
}

case "${1:-start}" in
  stop) stop ;;
  start) start; demo ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
