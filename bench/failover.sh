#!/usr/bin/env bash
# Failover time of a shard after its leader is killed with kill -9, on a
# local 3-node cluster (deploy/local-cluster.sh) with the node's default
# Raft timeouts (election 500 ms, heartbeat 50 ms).
#
#   bench/failover.sh [KILLS]        default 12 kills
#
# Each kill: pick a node and a shard it leads, and a key of that shard;
# kill -9 the node; from just before the kill, time until a put of that
# key succeeds when memcoordctl is given only another node's endpoint
# (memcoordctl put --timeout 1s in a loop; the client reaches the new
# leader through that node); restart the node and wait until leadership is
# back where it was.
# Victims rotate over the nodes and over the shards each node leads.
# Prints every kill, then median and max, and a one-line summary. Each
# kill's tries (ms since the kill, exit code, error) and the kill's time
# in ns (to match node logs, e.g. with LIBRAFT_TRACE=1) are kept in
# CLUSTER_DIR/kill-K.log.
#
# Environment: KILLS (12), BASE_PORT (7700; node i on tcp://127.0.0.1:
# BASE_PORT+i-1), CLUSTER_DIR (build/failover-cluster: wiped at start),
# ELECTION_MS (500), HEARTBEAT_MS (50), KILL_TIMEOUT_S (30: give up on a
# kill after that long), SPREAD_TIMEOUT_S (30), SETTLE_S (6), MEMCOORD_BIN,
# MEMCOORDCTL_BIN, EXTRA_ARGS (more node flags). Everything binds
# 127.0.0.1; every node is stopped by PID on exit (local-cluster.sh down).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

KILLS=${1:-${KILLS:-12}}
NODES=3
export BASE_PORT=${BASE_PORT:-7700}
export CLUSTER_DIR=${CLUSTER_DIR:-$PWD/build/failover-cluster}
export MEMCOORD_BIN=${MEMCOORD_BIN:-$PWD/build/memcoord}
export MEMCOORDCTL_BIN=${MEMCOORDCTL_BIN:-$PWD/build/memcoordctl}
ELECTION_MS=${ELECTION_MS:-500}
HEARTBEAT_MS=${HEARTBEAT_MS:-50}
KILL_TIMEOUT_S=${KILL_TIMEOUT_S:-30}
SPREAD_TIMEOUT_S=${SPREAD_TIMEOUT_S:-30}
export MEMCOORD_ARGS="--election-ms $ELECTION_MS --heartbeat-ms $HEARTBEAT_MS ${EXTRA_ARGS:-}"
CTL=$MEMCOORDCTL_BIN
NS=failover
CLUSTER=deploy/local-cluster.sh

die() { echo "failover: $*" >&2; exit 1; }
case "$KILLS" in '' | *[!0-9]*) die "KILLS must be a number, not '$KILLS'" ;; esac
if [ ! -x "$MEMCOORD_BIN" ] || [ ! -x "$CTL" ]; then die "no $MEMCOORD_BIN or $CTL: run 'make all' first"; fi

url() { echo "tcp://127.0.0.1:$((BASE_PORT + $1 - 1))"; }
now_ns() { date +%s%N; }
flat() { echo "${1//$'\n'/, }"; }   # lines onto one line
alive() {
  local p; p=$(cat "$CLUSTER_DIR/node-$1/pid" 2>/dev/null || true)
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  "$CLUSTER" down >/dev/null 2>&1 || true
  [ $rc -eq 0 ] || echo "failover: stopped (exit $rc); node logs in $CLUSTER_DIR/node-*/node.log" >&2
  exit $rc
}

# ---- status parsing: columns found by their header names ----

# One line per shard in the status that node $1 gives:
# "SHARD LO HI LEADER TERM LONG" (LEADER 0 when none is named; LONG - when
# there is no such column). Works with a per-node status (a * marks the
# shards the node leads) and with a cluster-wide one, whose APPLIED column
# holds one node:index per replica (so LONG is counted from the end).
status_rows() {
  { "$CTL" --endpoints "$(url "$1")" --timeout 1s status 2>/dev/null || true; } | awk '
    $1 == "SHARD" { for (i = 1; i <= NF; i++) col[$i] = i; hnf = NF; next }
    ("SHARD" in col) && $1 ~ /^[0-9]+$/ {
      split($col["SLOTS"], sl, "-"); l = $col["LEADER"]; sub(/\*$/, "", l)
      if (l !~ /^[0-9]+$/) l = 0
      long = ("LONG" in col) ? $(NF - (hnf - col["LONG"])) : "-"
      print $col["SHARD"], sl[1], sl[2], l, $col["TERM"], long
    }'
}

# Who leads what, as every live node sees it: "SHARD NODE" lines; a shard
# on which the nodes disagree shows twice.
leader_map() {
  local i
  for i in $(seq 1 $NODES); do
    alive "$i" || continue
    status_rows "$i" | awk '$4 != 0 { print $1, $4 }'
  done | sort -n -u
}

# Wait until the leader map is $1 (every shard led where it was at the
# start); warn and go on after SPREAD_TIMEOUT_S.
wait_map() {
  local want=$1 deadline=$((SECONDS + SPREAD_TIMEOUT_S)) got
  while :; do
    got=$(leader_map)
    [ "$got" = "$want" ] && return 0
    if [ $SECONDS -ge $deadline ]; then
      echo "  warning: leaders not back in place after ${SPREAD_TIMEOUT_S}s: $(flat "$got")" >&2
      return 0
    fi
    sleep 0.2
  done
}

# ---- slot hashing, as proto/slot.c: CRC16-XMODEM of ns '\0' key ----

CRC=0
crc16_add() { # $1: a string of ASCII bytes, or "" for one NUL byte
  local s=$1 i c b n=${#1}
  [ -n "$s" ] || { s=x; n=1; }
  for ((i = 0; i < n; i++)); do
    if [ -n "$1" ]; then printf -v c '%d' "'${s:i:1}"; else c=0; fi
    CRC=$((CRC ^ (c << 8)))
    for ((b = 0; b < 8; b++)); do
      if ((CRC & 0x8000)); then CRC=$(((CRC << 1 ^ 0x1021) & 0xFFFF)); else CRC=$(((CRC << 1) & 0xFFFF)); fi
    done
  done
}
slot_of() { CRC=0; crc16_add "$NS"; crc16_add ""; crc16_add "$1"; SLOT=$((CRC % 16384)); }

# ---- start ----

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$CLUSTER" down >/dev/null 2>&1 || true   # nodes a killed earlier run left
# Wipe only what looks like a local-cluster.sh folder (or an empty one).
if [ -d "$CLUSTER_DIR" ] && [ ! -e "$CLUSTER_DIR/size" ] && [ -n "$(ls -A "$CLUSTER_DIR")" ]; then
  die "$CLUSTER_DIR is not a local-cluster.sh folder: not wiping it"
fi
rm -rf "$CLUSTER_DIR"
# Someone else's cluster on these ports would be measured instead (or make
# a restart fail): client ports BASE_PORT.., raft ports BASE_PORT+100..
# (local-cluster.sh: 32 per node).
for p in $(seq "$BASE_PORT" $((BASE_PORT + NODES - 1))) $(seq $((BASE_PORT + 100)) $((BASE_PORT + 100 + NODES * 32 - 1))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    die "127.0.0.1:$p is in use by another process: pick another BASE_PORT"
  fi
done
echo "== failover: $NODES nodes on $(url 1)..$((BASE_PORT + NODES - 1)), election ${ELECTION_MS} ms, heartbeat ${HEARTBEAT_MS} ms, $KILLS kills"
"$CLUSTER" up $NODES | sed 's/^/  /'

# The settled leader map: every shard led, leaders spread (counts differ by
# at most one), and no change for SETTLE_S seconds: a node retries handing
# a shard to its preferred leader every 5 s (node/replica.c).
SETTLE_S=${SETTLE_S:-6}
deadline=$((SECONDS + SPREAD_TIMEOUT_S)); prev=""; since=$SECONDS
while :; do
  map=$(leader_map)
  counts=$(echo "$map" | awk 'NF == 2 { c[$2]++ } END { for (n = 1; n <= '$NODES'; n++) print c[n] + 0 }' | sort -n)
  balanced=$(( $(echo "$counts" | tail -1) - $(echo "$counts" | head -1) <= 1 ))
  shards=$(status_rows 1 | wc -l)
  if [ "$shards" -gt 0 ] && [ "$(echo "$map" | grep -c .)" -eq "$shards" ] && [ $balanced -eq 1 ]; then
    [ "$map" = "$prev" ] || since=$SECONDS
    [ $((SECONDS - since)) -lt "$SETTLE_S" ] || break
  else
    since=$SECONDS
  fi
  [ $SECONDS -lt $deadline ] || die "leaders did not settle within ${SPREAD_TIMEOUT_S}s: $(flat "$map")"
  prev=$map; sleep 0.3
done
BASELINE=$map
echo "  $shards shards; leaders (shard node): $(flat "$BASELINE")"

# A probe key per shard, found by hashing; checked below against the
# records each shard then holds.
declare -A PROBE
while read -r s lo hi _; do
  for ((j = 0; j < 100000; j++)); do
    slot_of "probe/$j"
    if [ $SLOT -ge "$lo" ] && [ $SLOT -le "$hi" ]; then PROBE[$s]="probe/$j"; break; fi
  done
  [ -n "${PROBE[$s]:-}" ] || die "no probe key found for shard $s"
done < <(status_rows 1)
for s in "${!PROBE[@]}"; do
  "$CTL" --endpoints "$(url 1)" --timeout 5s -n $NS put "${PROBE[$s]}" init >/dev/null ||
    die "put ${PROBE[$s]} failed on a healthy cluster"
done
# Each shard now holds exactly one long-tier record (the cluster is new):
# if not, this script's hash is not the node's.
deadline=$((SECONDS + 10))
until [ "$(status_rows 1 | awk '$6 != "-" && $6 != 1' | wc -l)" -eq 0 ]; do
  [ $SECONDS -lt $deadline ] || die "probe keys did not land one per shard: the slot hash here differs from proto/slot.c"
  sleep 0.2
done

# ---- the kills ----

TIMES=()
for ((k = 1; k <= KILLS; k++)); do
  victim=$(((k - 1) % NODES + 1))
  via=$((victim % NODES + 1))
  # A shard the victim leads now, rotating over them.
  mapfile -t led < <(leader_map | awk -v n=$victim '$2 == n { print $1 }')
  [ ${#led[@]} -gt 0 ] || die "kill $k: node $victim leads no shard: $(flat "$(leader_map)")"
  shard=${led[$(((k - 1) / NODES % ${#led[@]}))]}
  key=${PROBE[$shard]}
  # The put must work before the kill.
  "$CTL" --endpoints "$(url "$via")" --timeout 5s -n $NS put "$key" "before-$k" >/dev/null ||
    die "kill $k: put $key via node $via failed before the kill"
  term0=$(status_rows "$via" | awk -v s="$shard" '$1 == s { print $5 }')

  klog=$CLUSTER_DIR/kill-$k.log   # every try: ms since the kill, exit code, error
  t0=$(now_ns)
  echo "# kill $k at $t0 ns (date +%s%N): node $victim, leader of shard $shard; puts of $key via node $via" >"$klog"
  "$CLUSTER" kill "$victim" >/dev/null
  tries=0
  while :; do
    tries=$((tries + 1))
    rc=0
    "$CTL" --endpoints "$(url "$via")" --timeout 1s -n $NS put "$key" "after-$k" >/dev/null 2>"$klog.err" || rc=$?
    echo "$((($(now_ns) - t0) / 1000000)) rc=$rc $(tr '\n' ' ' <"$klog.err")" >>"$klog"
    [ $rc -ne 0 ] || break
    if [ $(($(now_ns) - t0)) -ge $((KILL_TIMEOUT_S * 1000000000)) ]; then
      die "kill $k: no put of $key (shard $shard) via node $via within ${KILL_TIMEOUT_S}s after killing node $victim; tries in $klog"
    fi
  done
  t1=$(now_ns)
  ms=$(((t1 - t0) / 1000000))
  TIMES+=("$ms")
  rm -f "$klog.err"
  # The shard's leader and term now, as node $via sees it.
  read -r new term1 < <(status_rows "$via" | awk -v s="$shard" '$1 == s { print $4, $5 }') || true
  printf '  kill %2d: node %d (leader of shard %d) -> put via node %d ok after %5d ms (%d tries; new leader %s, term %s -> %s)\n' \
    "$k" "$victim" "$shard" "$via" "$ms" "$tries" "${new:-?}" "${term0:-?}" "${term1:-?}"

  for _ in $(seq 100); do alive "$victim" || break; sleep 0.1; done   # gone, ports closed
  out=$("$CLUSTER" restart "$victim" 2>&1) || die "kill $k: node $victim did not come back: $out"
  wait_map "$BASELINE"
done

# ---- figures ----

sorted=$(printf '%s\n' "${TIMES[@]}" | sort -n)
n=${#TIMES[@]}
read -r median max min mean < <(echo "$sorted" | awk '{ v[NR] = $1; s += $1 }
  END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%d %d %d %d\n", m, v[NR], v[1], s / NR }')
echo "failover times (ms, sorted): $(flat "$sorted")"
echo "median $median ms, max $max ms (min $min ms, mean $mean ms)"
echo "SUMMARY: $n leader kills (kill -9) on a local $NODES-node cluster, election ${ELECTION_MS} ms / heartbeat ${HEARTBEAT_MS} ms: a put to the dead leader's shard, memcoordctl given only a surviving node's endpoint, succeeded after median $median ms, max $max ms"
