#!/usr/bin/env bash
# make run / make stop: a local 3-node cluster (deploy/local-cluster.sh) on
# 127.0.0.1:7400-7402 with its data under build/cluster, and a short demo
# through memcoordctl.
#   deploy/run-demo.sh        start (if not running) and run the demo
#   deploy/run-demo.sh stop   stop the cluster, every node by its PID
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
export BASE_PORT=${BASE_PORT:-7400}
export CLUSTER_DIR=${CLUSTER_DIR:-$BUILD/cluster}
export MEMCOORD_BIN=$BUILD/memcoord MEMCOORDCTL_BIN=$BUILD/memcoordctl
NODES=3
ENDPOINTS=$(seq -s, -f "tcp://127.0.0.1:%g" "$BASE_PORT" $((BASE_PORT + NODES - 1)))
CTL="$BUILD/memcoordctl --endpoints $ENDPOINTS"

stop() { deploy/local-cluster.sh down; }

start() {
  deploy/local-cluster.sh up "$NODES"
  # Leaders move to their preferred nodes within a few seconds: wait until
  # they are spread, every node leading at most ceil(shards / nodes) (from
  # the LEADER column of the shard rows).
  local deadline=$((SECONDS + 15))
  until $CTL status 2>/dev/null | awk -v nodes="$NODES" '
          $1 ~ /^[0-9]+$/ { shards++; if ($3 != "-") led[$3]++ }
          END { cap = int((shards + nodes - 1) / nodes); n = 0
                for (k in led) { n++; if (led[k] > cap) exit 1 }
                exit !(shards > 0 && n == nodes) }' ||
        [ $SECONDS -ge $deadline ]; do
    sleep 0.2
  done
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

memcoord is running: $NODES nodes, node i on tcp://127.0.0.1:$((BASE_PORT))+i-1. Try:
  export MEMCOORD_ENDPOINTS=$ENDPOINTS
  $BUILD/memcoordctl -n myteam put handoff/step1 done
  $BUILD/memcoordctl -n myteam get handoff/step1 --meta
  deploy/local-cluster.sh status | kill 2 | restart 2
Stop it with: make stop    (logs: $CLUSTER_DIR/node-*/node.log)
TXT
}

case "${1:-start}" in
  stop) stop ;;
  start) start; demo ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
