#!/usr/bin/env bash
# make bench: memcoord's standard benchmark suite on this machine.
#
#   bench/suite.sh            (make bench builds first, then runs this)
#
# 1. Starts a local 3-node cluster (deploy/local-cluster.sh, 8 shards of 3
#    replicas, every write in the Raft log on disk of a majority before it
#    is acknowledged) and runs memcoord-bench with 256-byte values:
#    put and linearizable get at 1, 64 and 256 in flight, serializable get
#    at 64, read-then-CAS uncontended and contended at 64, mixed at 64,
#    and watch fan-out. Prints one table; stops the cluster.
# 2. Restart and memory: a single node (the embedded default, 8 shards)
#    loaded with RECORDS records of 100 B, half in the mid tier and half in
#    the long one; resident memory (VmRSS) per record before and after the
#    load; then SIGTERM, and the time from the restart until every shard
#    answers a read through the node.
#
# Every figure comes with the machine's load average when it was taken:
# on a shared machine, compare ratios (bench/compare-etcd.sh), not
# absolute figures. Results: build/bench/results.jsonl (one memcoord-bench
# JSON line per run) and build/bench/table.txt.
#
# Environment: DURATION (5s per run), WARMUP (1s), BASE_PORT (7800: node i
# on tcp://127.0.0.1:BASE_PORT+i-1, raft ports from BASE_PORT+100),
# SINGLE_PORT (7850, the single node; raft on 7860-7868), RECORDS
# (1000000; 0 skips part 2), SKIP_SUITE=1 (part 2 only), BUILD (build).
# Everything binds 127.0.0.1; every node is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

BUILD=${BUILD:-$PWD/build}
BENCH=$BUILD/memcoord-bench
NODE=$BUILD/memcoord
CTL=$BUILD/memcoordctl
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
RECORDS=${RECORDS:-1000000}
SKIP_SUITE=${SKIP_SUITE:-0}
export BASE_PORT=${BASE_PORT:-7800}
SINGLE_PORT=${SINGLE_PORT:-7850}
export CLUSTER_DIR=$BUILD/bench/cluster
export MEMCOORD_BIN=$NODE MEMCOORDCTL_BIN=$CTL
OUT=$BUILD/bench
SINGLE_DIR=$OUT/single
SINGLE_PID=""

die() { echo "bench: $*" >&2; exit 1; }
for b in "$BENCH" "$NODE" "$CTL"; do [ -x "$b" ] || die "no $b: run 'make all' first"; done

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  deploy/local-cluster.sh down >/dev/null 2>&1 || true
  if [ -n "$SINGLE_PID" ] && kill -0 "$SINGLE_PID" 2>/dev/null; then
    kill -TERM "$SINGLE_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SINGLE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SINGLE_PID" 2>/dev/null || true
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

mkdir -p "$OUT"
: >"$OUT/results.jsonl"
load1() { cut -d' ' -f1 /proc/loadavg; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

machine() {
  echo "memcoord $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores" \
       "($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)   (top: $(top -bn1 | sed -n 3p | tr -s ' '))"
}

# ---- part 1: the suite on a 3-node cluster ----

# name|memcoord-bench arguments
SUITE=(
  "put, 1 in flight|put --inflight 1"
  "put, 64 in flight|put --inflight 64"
  "put, 256 in flight|put --inflight 256"
  "get, 1 in flight|get --inflight 1"
  "get, 64 in flight|get --inflight 64"
  "get, 256 in flight|get --inflight 256"
  "get --serializable, 64|get --inflight 64 --serializable"
  "cas uncontended, 64|cas --inflight 64"
  "cas contended, 64 on 16 keys|cas --inflight 64 --hot-keys 16"
  "mixed 70/20/10, 64|mixed --inflight 64"
  "watch, 16 watchers, 4 writers|watch --watchers 16 --inflight 4"
)

row() { # name json load
  python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
name, line, load = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    r = json.loads(line)
except Exception:
    print(f"{name:<32} {'(no result: see above)':>10}")
    sys.exit(0)
errs = r.get("errors", 0)
codes = ",".join(f"{k}:{v}" for k, v in r.get("errors_by_code", {}).items())
extra = ""
if r.get("workload") == "cas":
    extra = f" cas_ok={r.get('cas_ok')} conflicts={r.get('conflicts')}"
if r.get("workload") == "watch":
    extra = f" missed={r.get('missed')} event_p50={r.get('event_p50_ms')}ms"
print(f"{name:<32} {r['ops_per_sec']:>10.0f} {r['p50_ms']:>8.3f} {r['p90_ms']:>8.3f} "
      f"{r['p99_ms']:>8.3f} {r['p999_ms']:>8.3f} {errs:>6} {load:>6}{(' ' + codes) if codes else ''}{extra}")
EOF
}

if [ "$SKIP_SUITE" != 1 ]; then
  rm -rf "$CLUSTER_DIR"
  deploy/local-cluster.sh up 3 >"$OUT/cluster-up.log" 2>&1 || { cat "$OUT/cluster-up.log"; die "cluster did not start"; }
  EP=$(sed -n 's/^MEMCOORD_ENDPOINTS=//p' "$OUT/cluster-up.log")
  {
    echo "== memcoord-bench suite: 3 nodes on 127.0.0.1 (8 shards x 3 replicas), 256 B values, $DURATION per run after $WARMUP warm-up"
    machine
    printf '%-32s %10s %8s %8s %8s %8s %6s %6s\n' workload ops/s p50_ms p90_ms p99_ms p999_ms errors load1
  } | tee "$OUT/table.txt"
  for entry in "${SUITE[@]}"; do
    name=${entry%%|*}; args=${entry#*|}
    load=$(load1)
    # shellcheck disable=SC2086
    json=$("$BENCH" --endpoints "$EP" --json $args --duration "$DURATION" --warmup "$WARMUP" \
             2>"$OUT/last-run.err" | tail -1) || true
    [ -n "$json" ] || { echo "  ($name failed:)"; tail -3 "$OUT/last-run.err"; }
    echo "$json" >>"$OUT/results.jsonl"
    row "$name" "$json" "$load" | tee -a "$OUT/table.txt"
  done
  echo "(commands: $BENCH --endpoints $EP WORKLOAD ARGS --duration $DURATION; JSON lines in $OUT/results.jsonl)" | tee -a "$OUT/table.txt"
  deploy/local-cluster.sh down >/dev/null
fi

# ---- part 2: restart time and memory per record, one node ----

[ "$RECORDS" -gt 0 ] || exit 0

rss_kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

start_single() {
  "$NODE" --data "$SINGLE_DIR/data" --listen "tcp://127.0.0.1:$SINGLE_PORT" \
    --raft-addr "127.0.0.1:$((SINGLE_PORT + 10))" >>"$SINGLE_DIR/node.log" 2>&1 </dev/null &
  SINGLE_PID=$!
}

# Wait until every shard answers a read through the node: the test
# deploy/local-cluster.sh uses for "ready". Prints ms since $1.
wait_serving() {
  local t0=$1 deadline=$(($(now_ms) + 120000))
  while :; do
    if "$CTL" --endpoints "tcp://127.0.0.1:$SINGLE_PORT" --timeout 1s ls memcoord-probe/ >/dev/null 2>&1; then
      echo $(($(now_ms) - t0)); return 0
    fi
    kill -0 "$SINGLE_PID" 2>/dev/null || die "the node exited: $(tail -3 "$SINGLE_DIR/node.log")"
    [ "$(now_ms)" -lt $deadline ] || die "the node is not serving after 120 s"
    sleep 0.02
  done
}

rm -rf "$SINGLE_DIR"; mkdir -p "$SINGLE_DIR"
echo
echo "== restart and memory: one node (8 shards), $RECORDS records of 100 B, half mid and half long tier"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(now_ms); start_single; first_ms=$(wait_serving "$t0")
rss0=$(rss_kb "$SINGLE_PID" VmRSS); anon0=$(rss_kb "$SINGLE_PID" RssAnon); file0=$(rss_kb "$SINGLE_PID" RssFile)
half=$((RECORDS / 2))
SEP="tcp://127.0.0.1:$SINGLE_PORT"
for tier in mid long; do
  "$BENCH" --endpoints "$SEP" --json load --keys "$half" --space "$tier" --tier "$tier" \
    --value-size 100 --inflight 128 2>"$OUT/load-$tier.err" | tail -1 >"$OUT/load-$tier.json" \
    || die "load of the $tier tier failed: $(tail -3 "$OUT/load-$tier.err")"
  python3 - "$OUT/load-$tier.json" "$tier" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  loaded {r['ops']} records into {sys.argv[2]}: {r['ops_per_sec']:.0f} puts/s, "
      f"p99 {r['p99_ms']} ms, errors {r['errors']}")
EOF
done
sleep 2   # let the last turn commit and a snapshot settle
rss1=$(rss_kb "$SINGLE_PID" VmRSS); anon1=$(rss_kb "$SINGLE_PID" RssAnon); file1=$(rss_kb "$SINGLE_PID" RssFile)
kv=$((4 + 8 + 100))   # key "mid/00000042" (12 B) + value (100 B)
python3 - "$RECORDS" "$rss0" "$rss1" "$anon0" "$anon1" "$file0" "$file1" "$kv" <<'EOF'
import sys
n, rss0, rss1, a0, a1, f0, f1, kv = map(int, sys.argv[1:])
per = lambda b, a: (a - b) * 1024 / n
print(f"  resident memory: VmRSS {rss0/1024:.0f} -> {rss1/1024:.0f} MiB = {per(rss0, rss1):.0f} B per record "
      f"(anonymous {per(a0, a1):.0f} B, file-backed LMDB pages {per(f0, f1):.0f} B)")
print(f"  beyond key and value ({kv} B): {per(rss0, rss1) - kv:.0f} B per record (target <= 100)")
EOF
t_stop=$(now_ms); kill -TERM "$SINGLE_PID"
while kill -0 "$SINGLE_PID" 2>/dev/null; do sleep 0.01; done
wait "$SINGLE_PID" 2>/dev/null || true
stop_ms=$(($(now_ms) - t_stop))
du_mb=$(du -sm "$SINGLE_DIR/data" | cut -f1)
t0=$(now_ms); start_single; restart_ms=$(wait_serving "$t0")
rss2=$(rss_kb "$SINGLE_PID" VmRSS)
echo "  SIGTERM to exit: $stop_ms ms; restart to serving (every shard answers a read): $restart_ms ms (target <= 2000); data folder $du_mb MiB"
echo "  (an empty node served $first_ms ms after its start; VmRSS right after the restart: $((rss2 / 1024)) MiB)"
echo "  load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
