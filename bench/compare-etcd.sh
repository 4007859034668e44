#!/usr/bin/env bash
# memcoord against etcd, side by side, in one run on one machine.
#
#   bench/compare-etcd.sh
#
# 1. Installs what it needs from Debian (etcd-server, etcd-client,
#    golang-go, golang-etcd-server-dev) and builds memcoord and
#    bench/etcd-driver (Go, clientv3 of golang-etcd-server-dev, offline:
#    GO111MODULE=off GOPATH=/usr/share/gocode).
# 2. Starts a 3-member etcd on 127.0.0.1 with its default durability (a
#    write is acknowledged once it is in the WAL of a majority, fsynced)
#    and a 3-node memcoord cluster alike (deploy/local-cluster.sh: 8 shards
#    of 3 replicas; a write is acknowledged once it is in the Raft log of a
#    majority, on disk). Both stay up for the whole run.
# 3. Cross-checks etcd with its own tool: etcdctl check perf (60 s).
# 4. Runs the same workloads against both with the same options and 256 B
#    values, alternating: round 1 memcoord then etcd for each workload,
#    round 2 the same, ... (ROUNDS rounds, at least 3), so that drift of
#    the machine's load hits both alike.
# 5. Prints, per workload, the medians over rounds of ops/s, p50 and p99
#    for each, the ratio memcoord/etcd, and the issue's target.
#
# Results: build/compare/samples.jsonl (one JSON object per run, with
# "system", "round" and "load1"), build/compare/check-perf.txt and
# build/compare/table.txt. Everything binds 127.0.0.1 and every process is
# stopped by PID on exit.
#
# Environment: ROUNDS (3), DURATION (5s), WARMUP (1s), BASE_PORT (7800:
# memcoord node i on tcp://127.0.0.1:BASE_PORT+i-1), ETCD_PORT (8010:
# member i's client port ETCD_PORT+i-1, peer port ETCD_PORT+10+i-1),
# CHECK_PERF (1; 0 skips etcdctl check perf), WORKLOADS (names from the
# list below, comma-separated; default all), BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

BUILD=${BUILD:-$PWD/build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CHECK_PERF=${CHECK_PERF:-1}
ETCD_PORT=${ETCD_PORT:-8010}
export BASE_PORT=${BASE_PORT:-7800}
OUT=$BUILD/compare
export CLUSTER_DIR=$OUT/memcoord
export MEMCOORD_BIN=$BUILD/memcoord MEMCOORDCTL_BIN=$BUILD/memcoordctl
BENCH=$BUILD/memcoord-bench
DRIVER=$BUILD/etcd-driver
ETCD_PIDS=()

die() { echo "compare-etcd: $*" >&2; exit 1; }
case "$ROUNDS" in '' | *[!0-9]*) die "ROUNDS must be a number" ;; esac
[ "$ROUNDS" -ge 3 ] || echo "compare-etcd: ROUNDS=$ROUNDS: fewer than 3 rounds make poor medians" >&2

# name|arguments (the same for memcoord-bench and etcd-driver)
ALL_WORKLOADS=(
  "put-1|put --inflight 1"
  "put-64|put --inflight 64"
  "put-256|put --inflight 256"
  "get-64|get --inflight 64"
  "get-serializable-64|get --inflight 64 --serializable"
  "cas-64|cas --inflight 64"
  "cas-contended-64|cas --inflight 64 --hot-keys 16"
  "mixed-64|mixed --inflight 64"
  "watch-16|watch --watchers 16 --inflight 4"
)

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  deploy/local-cluster.sh down >/dev/null 2>&1 || true
  local p
  for p in "${ETCD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${ETCD_PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  exit $rc
}
trap cleanup EXIT INT TERM

# ---- 1. packages and binaries ----
missing=""
for p in etcd-server etcd-client golang-go golang-etcd-server-dev python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "compare-etcd: installing Debian packages:$missing"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  # etcd-server's package may start a system etcd on 2379/2380 where
  # systemd runs; this script uses its own members on other ports.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing </dev/null
fi
make --no-print-directory -j2 all etcd-driver BUILD="$BUILD" >/dev/null
for b in "$BENCH" "$DRIVER" "$MEMCOORD_BIN"; do [ -x "$b" ] || die "no $b"; done

rm -rf "$OUT"; mkdir -p "$OUT"

# ---- 2. the two clusters ----
etcd_client() { echo "127.0.0.1:$((ETCD_PORT + $1 - 1))"; }
etcd_peer() { echo "http://127.0.0.1:$((ETCD_PORT + 10 + $1 - 1))"; }
initial=""
for i in 1 2 3; do initial="$initial${initial:+,}m$i=$(etcd_peer $i)"; done
ETCD_EP=""
for i in 1 2 3; do
  mkdir -p "$OUT/etcd-$i"
  etcd --name "m$i" --data-dir "$OUT/etcd-$i/data" \
    --listen-client-urls "http://$(etcd_client $i)" --advertise-client-urls "http://$(etcd_client $i)" \
    --listen-peer-urls "$(etcd_peer $i)" --initial-advertise-peer-urls "$(etcd_peer $i)" \
    --initial-cluster "$initial" --initial-cluster-token memcoord-compare \
    --initial-cluster-state new --logger zap --log-outputs stderr --log-level warn \
    >"$OUT/etcd-$i/etcd.log" 2>&1 </dev/null &
  ETCD_PIDS+=($!)
  ETCD_EP="$ETCD_EP${ETCD_EP:+,}$(etcd_client $i)"
done
export ETCDCTL_API=3
deadline=$((SECONDS + 30))
until etcdctl --endpoints "$ETCD_EP" endpoint health >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || die "etcd is not healthy: $(tail -3 "$OUT"/etcd-1/etcd.log)"
  sleep 0.2
done
deploy/local-cluster.sh up 3 >"$OUT/memcoord-up.log" 2>&1 || { cat "$OUT/memcoord-up.log"; die "memcoord did not start"; }
MC_EP=$(sed -n 's/^MEMCOORD_ENDPOINTS=//p' "$OUT/memcoord-up.log")

machine() {
  echo "on $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "memcoord $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(etcd --version | head -1), $(go version | cut -d' ' -f3)"
}
{
  echo "== memcoord vs etcd: 3 members each on 127.0.0.1, 256 B values, $ROUNDS alternating rounds of $DURATION (after $WARMUP warm-up) per workload"
  machine
  echo "memcoord: $MC_EP   etcd: $ETCD_EP"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/header.txt"

# ---- 3. etcd's own tool ----
if [ "$CHECK_PERF" = 1 ]; then
  echo "etcdctl check perf (60 s) ..."
  etcdctl --endpoints "$ETCD_EP" check perf --load s >"$OUT/check-perf.txt" 2>&1 || true
  # Its progress bar redraws with carriage returns: keep the verdicts.
  tr '\r' '\n' <"$OUT/check-perf.txt" | grep -E 'PASS|FAIL|Throughput|Slowest|Stddev' | sed 's/^/  /'
  echo "  (check perf --load s drives a fixed ~150 writes/s for 60 s: a health and latency check, not a peak)"
fi

# ---- 4. alternating rounds ----
selected=()
for entry in "${ALL_WORKLOADS[@]}"; do
  name=${entry%%|*}
  if [ -z "${WORKLOADS:-}" ] || [[ ",$WORKLOADS," == *",$name,"* ]]; then selected+=("$entry"); fi
done
[ ${#selected[@]} -gt 0 ] || die "WORKLOADS=$WORKLOADS names no workload"

sample() { # system round name args...
  local system=$1 round=$2 name=$3; shift 3
  local load json bin ep
  load=$(cut -d' ' -f1 /proc/loadavg)
  if [ "$system" = memcoord ]; then bin=$BENCH; ep=$MC_EP; else bin=$DRIVER; ep=$ETCD_EP; fi
  json=$("$bin" --endpoints "$ep" --json "$@" --duration "$DURATION" --warmup "$WARMUP" \
           2>"$OUT/last-$system.err" | tail -1) || true
  python3 - "$system" "$round" "$name" "$load" "$json" >>"$OUT/samples.jsonl" <<'EOF'
import json, sys
system, rnd, name, load, line = sys.argv[1:]
try:
    r = json.loads(line)
except Exception:
    r = {"failed": True}
r.update(system=system, round=int(rnd), name=name, load1=float(load))
print(json.dumps(r))
EOF
  python3 - "$OUT/samples.jsonl" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
if r.get("failed"):
    print(f"  round {r['round']} {r['name']:<20} {r['system']:<8}  FAILED")
else:
    print(f"  round {r['round']} {r['name']:<20} {r['system']:<8} {r['ops_per_sec']:>9.0f} ops/s  "
          f"p50 {r['p50_ms']:>7.3f}  p99 {r['p99_ms']:>8.3f} ms  errors {r['errors']}  load {r['load1']}")
EOF
  # A failed run says why on stderr.
  [ -n "$json" ] || sed 's/^/      /' "$OUT/last-$system.err" | grep -v "ops/s" | tail -2 || true
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for entry in "${selected[@]}"; do
    name=${entry%%|*}; args=${entry#*|}
    # shellcheck disable=SC2086
    sample memcoord "$round" "$name" $args
    # shellcheck disable=SC2086
    sample etcd "$round" "$name" $args
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/header.txt"

# ---- 5. the table ----
python3 - "$OUT/samples.jsonl" <<'EOF' | tee "$OUT/table.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
order = []
for r in rows:
    if r["name"] not in order:
        order.append(r["name"])
def med(name, system, field):
    v = [r[field] for r in rows if r["name"] == name and r["system"] == system and not r.get("failed")]
    return (statistics.median(v), min(v), max(v), len(v)) if v else (None, None, None, 0)
# The issue's targets: (ops ratio at least, p99 ratio at most, memcoord p50 at most)
targets = {
    "put-1": (None, None, 0.35),
    "put-64": (2.0, 0.5, None),
    "put-256": (2.0, 0.5, None),
    "get-64": (2.0, None, None),
    "get-serializable-64": (3.0, None, None),
    "cas-64": (5.0, None, None),
}
print()
print(f"{'workload':<20} | {'memcoord ops/s':>14} {'p50':>7} {'p99':>8} | {'etcd ops/s':>11} {'p50':>7} {'p99':>8} |"
      f" {'ops x':>6} {'p99 x':>6} | target")
print("-" * 118)
for name in order:
    mo, mlo, mhi, mn = med(name, "memcoord", "ops_per_sec")
    eo, elo, ehi, en = med(name, "etcd", "ops_per_sec")
    m50 = med(name, "memcoord", "p50_ms")[0]; m99 = med(name, "memcoord", "p99_ms")[0]
    e50 = med(name, "etcd", "p50_ms")[0]; e99 = med(name, "etcd", "p99_ms")[0]
    fmt = lambda v, f: (f % v) if v is not None else "-"
    ratio = mo / eo if mo and eo else None
    p99r = m99 / e99 if m99 and e99 else None
    verdict = ""
    t = targets.get(name)
    if t:
        parts, ok = [], True
        if t[0] is not None:
            parts.append(f"ops >= {t[0]:g}x"); ok = ok and ratio is not None and ratio >= t[0]
        if t[1] is not None:
            parts.append(f"p99 <= {t[1]:g}x"); ok = ok and p99r is not None and p99r <= t[1]
        if t[2] is not None:
            parts.append(f"p50 <= {t[2]:g} ms"); ok = ok and m50 is not None and m50 <= t[2]
        verdict = ", ".join(parts) + (": met" if ok else ": MISSED")
    print(f"{name:<20} | {fmt(mo, '%14.0f')} {fmt(m50, '%7.3f')} {fmt(m99, '%8.3f')} | {fmt(eo, '%11.0f')} "
          f"{fmt(e50, '%7.3f')} {fmt(e99, '%8.3f')} | {fmt(ratio, '%6.2f')} {fmt(p99r, '%6.2f')} | {verdict}")
    if mn and en:
        print(f"{'':<20} | {'range':>5} {mlo:>8.0f}-{mhi:<8.0f} {'':>7} | {elo:>6.0f}-{ehi:<8.0f} {'':>7} | "
              f"n={mn}/{en}")
errs = [r for r in rows if not r.get("failed") and r.get("errors")]
if errs:
    print("errors: " + "; ".join(f"{r['system']} {r['name']} round {r['round']}: {r['errors_by_code']}" for r in errs))
fails = [r for r in rows if r.get("failed")]
if fails:
    print("failed runs: " + "; ".join(f"{r['system']} {r['name']} round {r['round']}" for r in fails))
loads = [r["load1"] for r in rows]
print(f"medians of {max(r['round'] for r in rows)} rounds; ops x = memcoord/etcd ops/s, p99 x = memcoord/etcd p99;"
      f" 1-min load average over the samples {min(loads):.2f}-{max(loads):.2f}")
EOF
echo "(samples: $OUT/samples.jsonl; etcd's own check: $OUT/check-perf.txt)"
