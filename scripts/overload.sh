#!/usr/bin/env bash
# Overload (issue 8): build/attnserve with a small queue, driven at FACTOR times the capacity it
# just measured, then left alone. Prints and checks:
#   rejections    RESOURCE_EXHAUSTED, answered fast: p99 < 5 ms
#   errors        no status but OK and RESOURCE_EXHAUSTED
#   memory        peak resident memory under overload <= 1.5 x after the capacity run
#   recovery      closed-loop throughput after the overload >= 0.8 x the same before it
# Answers are checked for correctness by the ctest version (tests/server/overload_test.cc);
# this script measures the figures for docs/reliability.md.
#   scripts/overload.sh [--factor=4] [--queue=8] [--duration=10s] [--threads=2]
#                       [--model_dir=models/dates] [--build=build]
# Needs a built tree (scripts/build.sh) and jq. About 45 s.
set -euo pipefail
cd "$(dirname "$0")/.."
FACTOR=4
QUEUE=8
DURATION=10
THREADS=2
MODEL_DIR=models/dates
BUILD=build
for arg in "$@"; do
  case "$arg" in
    --factor=*) FACTOR=${arg#*=} ;;
    --queue=*) QUEUE=${arg#*=} ;;
    --duration=*) DURATION=${arg#*=}; DURATION=${DURATION%s} ;;
    --threads=*) THREADS=${arg#*=} ;;
    --model_dir=*) MODEL_DIR=${arg#*=} ;;
    --build=*) BUILD=${arg#*=} ;;
    *) sed -n '2,13p' "$0"; exit 64 ;;
  esac
done
SERVER=$BUILD/attnserve
BENCH=$BUILD/attnserve-bench
OUT=$(mktemp -d /tmp/attnserve-overload.XXXXXX)
# shellcheck source=scripts/load_common.sh
source scripts/load_common.sh
trap stop_server EXIT
REQUEST_FLAGS=(--sources_file="$(dates_sources)" --text --max_new_tokens=16)

# Capacity with the default queue: a closed loop of 32 on a queue of 8 would itself be shed
# (more than 8 calls can come back during one decode step) and understate it.
start_server
CAPACITY=$(capacity 5)
stop_server
RATE=$(awk -v c="$CAPACITY" -v f="$FACTOR" 'BEGIN { printf "%.0f", c * f }')
echo "capacity: $CAPACITY OK/s (closed loop, 32 in flight)"

start_server --max_queue_size="$QUEUE"
# The baseline that recovery is compared with: the same closed loop on the small queue.
bench "$OUT/baseline.json" --concurrency=32 --warmup=2s --duration=5s "${REQUEST_FLAGS[@]}"
RSS_LOADED=$(rss_kb "$SERVER_PID")
echo "offering $RATE/s for ${DURATION}s with --max_queue_size=$QUEUE"

bench "$OUT/overload.json" --rps="$RATE" --arrivals=poisson --duration="${DURATION}s" \
  --max_in_flight=100000 --timeout=30s "${REQUEST_FLAGS[@]}" &
BENCH_PID=$!
sample_rss "$SERVER_PID" 0.2 "$OUT/overload-rss.txt"
wait "$BENCH_PID"
RSS_AFTER=$(rss_kb "$SERVER_PID")
bench "$OUT/recovery.json" --concurrency=32 --duration=5s "${REQUEST_FLAGS[@]}"
stop_server

/usr/bin/python3 - "$OUT" "$CAPACITY" "$RSS_LOADED" "$RSS_AFTER" "$SERVER_EXIT" <<'PY'
import json, sys
out, capacity, rss_loaded, rss_after, exit_code = sys.argv[1:]
capacity, rss_loaded, rss_after = float(capacity), int(rss_loaded), int(rss_after)
over = json.load(open(f"{out}/overload.json"))
baseline = json.load(open(f"{out}/baseline.json"))
recovery = json.load(open(f"{out}/recovery.json"))
peak = max(int(line.split()[1]) for line in open(f"{out}/overload-rss.txt") if len(line.split()) == 2)
codes = over["status_codes"]
shed = over["failed_latency_ms"].get("RESOURCE_EXHAUSTED")
served = over["latency_ms"]
other = {c: n for c, n in codes.items() if c not in ("OK", "RESOURCE_EXHAUSTED")}
before = baseline["ok"] / baseline["elapsed_s"]
recovered = recovery["ok"] / recovery["elapsed_s"]
print(f"overload: {over['count']} calls at {over['requests_per_s']:.0f}/s: "
      + ", ".join(f"{c} {n}" for c, n in sorted(codes.items()))
      + f", dropped by client {over['dropped_by_client']}")
print(f"  served: {over['ok'] / over['elapsed_s']:.0f} OK/s, latency p50 {served['p50']:.2f} ms, "
      f"p99 {served['p99']:.2f} ms" if served else "  served: none")
if shed:
    print(f"  shed (RESOURCE_EXHAUSTED): p50 {shed['p50']:.3f} ms, p99 {shed['p99']:.3f} ms, "
          f"max {shed['max']:.3f} ms")
print(f"memory: {rss_loaded / 1024:.1f} MB after a loaded run, peak {peak / 1024:.1f} MB "
      f"under overload, {rss_after / 1024:.1f} MB after")
print(f"recovery: closed loop of 32 on the small queue: {before:.0f} OK/s before the overload, "
      f"{recovered:.0f} OK/s after = {recovered / before:.2f} x "
      f"({recovery['ok']} OK of {recovery['count']}, the rest shed)")
print(f"server exit code after SIGTERM: {exit_code}")
checks = [
    ("rejections are RESOURCE_EXHAUSTED, p99 < 5 ms", shed is not None and shed["p99"] < 5),
    ("no other status", not other and over["dropped_by_client"] == 0),
    ("peak memory <= 1.5 x loaded", peak <= 1.5 * rss_loaded),
    ("recovery >= 0.8 x before", recovered >= 0.8 * before),
    ("clean exit", exit_code == "0"),
]
failed = [name for name, ok in checks if not ok]
for name, ok in checks:
    print(f"  {'PASS' if ok else 'FAIL'}  {name}")
sys.exit(1 if failed else 0)
PY
