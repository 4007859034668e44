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
#    the long one, in two parts. Resident memory (VmRSS, and its anonymous
#    and file-backed parts) when empty, after the first part (475 712
#    records for 1M: whole snapshot cycles before the end) and at RECORDS:
#    the total per record, and the slope between the two sizes, which does
#    not book bounded costs (raft's in-memory log, buffers) per record. LMDB's
#    pages per sub-database (mdb_stat, lmdb-utils) split the figures into
#    records, expiry index and watch ring; the ring's growth until it is
#    full (100 000 events per shard) is taken out of the per-record
#    figure. Then SIGTERM, and the time from the restart until every shard
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

# LMDB pages in use, per sub-database, summed over the node's shards
# (mdb_stat of lmdb-utils, read-only beside the running node), as JSON.
lmdb_pages() {
  python3 - "$SINGLE_DIR/data" <<'EOF'
import glob, json, re, subprocess, sys
tot = {}
for d in sorted(glob.glob(sys.argv[1] + "/shard-*/state")):
    try:
        out = subprocess.run(["mdb_stat", "-a", "-e", "-f", d], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        print("{}"); sys.exit(0)
    db = None
    for line in out.splitlines():
        m = re.match(r"(?:Status of (.*)|Freelist Status)$", line.strip())
        if m:
            db = m.group(1) or "free list"
            continue
        m = re.match(r"\s*(Branch|Leaf|Overflow) pages: (\d+)", line)
        if m and db:
            tot[db] = tot.get(db, 0) + int(m.group(2))
        m = re.match(r"\s*Free pages: (\d+)", line)
        if m:
            tot["free"] = tot.get("free", 0) + int(m.group(1))
        m = re.match(r"\s*Number of pages used: (\d+)", line)
        if m:
            tot["used"] = tot.get("used", 0) + int(m.group(1))
print(json.dumps(tot))
EOF
}

# One measuring point after $1 records: VmRSS, its anonymous and
# file-backed parts (kB), and LMDB's pages, as JSON in $OUT/mem-$1.json.
measure() {
  sleep 6   # the last turn committed, and freed snapshot memory trimmed (every 5 s)
  python3 - "$1" "$(rss_kb "$SINGLE_PID" VmRSS)" "$(rss_kb "$SINGLE_PID" RssAnon)" \
    "$(rss_kb "$SINGLE_PID" RssFile)" "$(rss_kb "$SINGLE_PID" RssShmem)" "$(lmdb_pages)" \
    >"$OUT/mem-$1.json" <<'EOF'
import json, sys
n, rss, anon, file, shmem, pages = sys.argv[1:]
print(json.dumps({"records": int(n), "rss_kb": int(rss), "anon_kb": int(anon),
                  "file_kb": int(file), "shmem_kb": int(shmem),
                  "lmdb_pages": json.loads(pages)}))
EOF
}

# Load $2 records of 100 B, half in the mid tier and half in the long one,
# in the key spaces m$1 and l$1 (keys like "m1/00000042": 11 B).
load_half_and_half() {
  local tier sp
  for tier in mid long; do
    sp=${tier:0:1}$1
    "$BENCH" --endpoints "$SEP" --json load --keys "$(($2 / 2))" --space "$sp" --tier "$tier" \
      --value-size 100 --inflight 128 2>"$OUT/load-$sp.err" | tail -1 >"$OUT/load-$sp.json" \
      || die "load of $sp failed: $(tail -3 "$OUT/load-$sp.err")"
    python3 - "$OUT/load-$sp.json" "$tier" "$sp" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  loaded {r['ops']} records into {sys.argv[2]} ({sys.argv[3]}/...): "
      f"{r['ops_per_sec']:.0f} puts/s, p99 {r['p99_ms']} ms, errors {r['errors']}")
EOF
  done
}

rm -rf "$SINGLE_DIR"; mkdir -p "$SINGLE_DIR"
SEP="tcp://127.0.0.1:$SINGLE_PORT"
echo
echo "== restart and memory: one node (8 shards), $RECORDS records of 100 B, half mid and half long tier"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
command -v mdb_stat >/dev/null || echo "  (no mdb_stat: install lmdb-utils for LMDB's share of the figures)"
t0=$(now_ms); start_single; first_ms=$(wait_serving "$t0")
# The two sizes are whole snapshot cycles apart (SNAP_CYCLES x 16384
# entries in each of the 8 shards): raft keeps the entries since its last
# snapshot in memory (up to 16384 + 2048 per shard, tens of MiB), and
# between two sizes at different points of that cycle it would show as
# plus or minus tens of bytes per record in the anonymous memory.
SNAP_CYCLES=4
second=$((SNAP_CYCLES * 16384 * 8))
[ "$second" -lt "$RECORDS" ] || second=$((RECORDS / 2))
first=$((RECORDS - second))
measure 0
load_half_and_half 1 "$first"
measure "$first"
load_half_and_half 2 "$second"
measure "$RECORDS"
kv=$((11 + 100))   # key "m1/00000042" + value
python3 - "$OUT/mem-0.json" "$OUT/mem-$first.json" "$OUT/mem-$RECORDS.json" "$kv" \
  <<'EOF' | tee "$OUT/memory.txt"
import json, sys
p0, p1, p2 = (json.load(open(f)) for f in sys.argv[1:4])
kv = int(sys.argv[4])
PAGE = 4096
TIERS = ("short", "mid", "long")
def per(a, b, key):   # bytes of RSS per record from point a to point b
    return (b[key] - a[key]) * 1024 / (b["records"] - a["records"])
def lmdb(a, b, *dbs):  # bytes of LMDB pages per record from a to b
    pages = lambda p: sum(p["lmdb_pages"].get(d, 0) for d in dbs)
    return (pages(b) - pages(a)) * PAGE / (b["records"] - a["records"])
def line(a, b, what):
    print(f"  {what}: {per(a, b, 'rss_kb'):.0f} B per record (anonymous "
          f"{per(a, b, 'anon_kb'):.0f} B, file-backed {per(a, b, 'file_kb'):.0f} B)")
    if b["lmdb_pages"]:
        print(f"    LMDB pages in use: records {lmdb(a, b, *TIERS):.0f} B, expiry index "
              f"{lmdb(a, b, 'expiry'):.0f} B, watch ring {lmdb(a, b, 'events'):.0f} B, "
              f"dedupe {lmdb(a, b, 'dedupe'):.0f} B, free pages {lmdb(a, b, 'free'):.0f} B")
n1, n2 = p1["records"], p2["records"]
print(f"  VmRSS {p0['rss_kb'] / 1024:.0f} MiB empty, {p1['rss_kb'] / 1024:.0f} MiB at {n1} "
      f"records, {p2['rss_kb'] / 1024:.0f} MiB at {n2}")
line(p0, p2, f"total, 0 -> {n2} records")
line(p1, p2, f"slope, {n1} -> {n2} records")
slope = per(p1, p2, "rss_kb")
if p2["lmdb_pages"]:
    ring = lmdb(p1, p2, "events")
    print(f"  the watch ring filled meanwhile ({ring:.0f} B per record of the slope): a bounded "
          f"cost, at most --watch-ring events (100 000) and 32 MiB per shard")
    slope -= ring
    print(f"  per record beyond key and value ({kv} B): {slope - kv:.0f} B, the slope "
          f"without the ring's growth (target <= 100)")
else:
    print(f"  per record beyond key and value ({kv} B): {slope - kv:.0f} B, the slope, the "
          f"ring's growth included (target <= 100)")
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
