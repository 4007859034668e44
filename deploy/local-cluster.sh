#!/usr/bin/env bash
# A local memcoord cluster on 127.0.0.1, every node with its own ports and
# data folder, stopped by PID.
#
#   deploy/local-cluster.sh up [N]     start N nodes (default 3); prints
#                                      MEMCOORD_ENDPOINTS=... for scripts
#   deploy/local-cluster.sh status     which nodes run, and the cluster's shards
#   deploy/local-cluster.sh kill I     kill -9 node I
#   deploy/local-cluster.sh restart I  start node I again (same folder, ports)
#   deploy/local-cluster.sh down       stop every node (SIGTERM, then KILL)
#
# Environment: BASE_PORT (default 7400): node i listens on
# tcp://127.0.0.1:BASE_PORT+i-1, its meta group replica on raft port
# R=BASE_PORT+100+(i-1)*32 and the shards of its loop k on R+1+k; CLUSTER_DIR (default build/cluster);
# MEMCOORD_BIN, MEMCOORDCTL_BIN; extra node flags in MEMCOORD_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_PORT=${BASE_PORT:-7400}
CLUSTER_DIR=${CLUSTER_DIR:-$PWD/build/cluster}
BIN=${MEMCOORD_BIN:-$PWD/build/memcoord}
CTL=${MEMCOORDCTL_BIN:-$PWD/build/memcoordctl}
SHARDS_PORTS=32   # raft ports reserved per node: meta + up to 31 shards

url() { echo "tcp://127.0.0.1:$((BASE_PORT + $1 - 1))"; }
raft() { echo "127.0.0.1:$((BASE_PORT + 100 + ($1 - 1) * SHARDS_PORTS))"; }
n_nodes() { cat "$CLUSTER_DIR/size" 2>/dev/null || echo 0; }
pid_of() { cat "$CLUSTER_DIR/node-$1/pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
endpoints() {
  local n i out=""; n=$(n_nodes)
  for i in $(seq 1 "$n"); do out="$out${out:+,}$(url "$i")"; done; echo "$out"
}
cluster_list() {
  local n i out=""; n=$(n_nodes)
  for i in $(seq 1 "$n"); do out="$out${out:+,}$i=$(url "$i")@$(raft "$i")"; done
  echo "$out"
}

start_node() {
  local i=$1 d="$CLUSTER_DIR/node-$1"
  if alive "$i"; then echo "node $i already running (pid $(pid_of "$i"))"; return; fi
  mkdir -p "$d"
  # shellcheck disable=SC2086
  nohup "$BIN" --data "$d/data" --node-id "$i" --initial-cluster "$(cluster_list)" \
    ${MEMCOORD_ARGS:-} >>"$d/node.log" 2>&1 </dev/null &
  echo $! >"$d/pid"
}

# Ready when every shard answers a read through node i within 30 s.
wait_ready() {
  local deadline=$((SECONDS + 30)) probe
  while :; do
    probe=$("$CTL" --endpoints "$(url "$1")" --timeout 1s ls memcoord-probe/ 2>&1 || true)
    case "$probe" in *error*) ;; *) return 0 ;; esac
    if ! alive "$1" || [ $SECONDS -ge $deadline ]; then
      echo "node $1 is not ready: $probe"; tail -5 "$CLUSTER_DIR/node-$1/node.log"; return 1
    fi
    sleep 0.1
  done
}

cmd_up() {
  local n=${1:-3}
  if [ "$(n_nodes)" != 0 ] && [ "$(n_nodes)" != "$n" ]; then
    echo "a cluster of $(n_nodes) nodes is in $CLUSTER_DIR: 'down' and remove it first" >&2; exit 1
  fi
  # Raft keeps the membership it was bootstrapped with: the same folder
  # cannot serve a cluster on other ports.
  local was; was=$(cat "$CLUSTER_DIR/base_port" 2>/dev/null || echo "$BASE_PORT")
  if [ "$was" != "$BASE_PORT" ]; then
    echo "$CLUSTER_DIR holds a cluster on BASE_PORT=$was: use that, or remove the folder" >&2; exit 1
  fi
  mkdir -p "$CLUSTER_DIR"; echo "$n" >"$CLUSTER_DIR/size"; echo "$BASE_PORT" >"$CLUSTER_DIR/base_port"
  for i in $(seq 1 "$n"); do start_node "$i"; done
  for i in $(seq 1 "$n"); do wait_ready "$i"; done
  echo "cluster of $n nodes up in $CLUSTER_DIR"
  echo "MEMCOORD_ENDPOINTS=$(endpoints)"
}

cmd_status() {
  local n i; n=$(n_nodes)
  for i in $(seq 1 "$n"); do
    if alive "$i"; then echo "node $i up   pid $(pid_of "$i")  $(url "$i")"
    else echo "node $i DOWN                $(url "$i")"; fi
  done
  "$CTL" --endpoints "$(endpoints)" status || true
}

cmd_kill() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; echo "node $1 killed"; }

cmd_restart() { start_node "$1"; wait_ready "$1"; echo "node $1 restarted"; }

cmd_down() {
  local n i p; n=$(n_nodes)
  for i in $(seq 1 "$n"); do p=$(pid_of "$i"); [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 "$n"); do
    for _ in $(seq 100); do alive "$i" || break; sleep 0.1; done
    alive "$i" && kill -KILL "$(pid_of "$i")" 2>/dev/null || true
    rm -f "$CLUSTER_DIR/node-$i/pid"
  done
  echo "cluster down"
}

case "${1:-}" in
  up) cmd_up "${2:-3}" ;;
  status) cmd_status ;;
  kill) cmd_kill "${2:?node number}" ;;
  restart) cmd_restart "${2:?node number}" ;;
  down) cmd_down ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
