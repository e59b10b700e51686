#!/usr/bin/env bash
# Soak (issue 8): build/attnserve at LOAD (70%) of the capacity it just measured, for DURATION,
# with its resident memory sampled every INTERVAL. Prints and checks:
#   errors   calls that did not end OK, plus arrivals the client could not send   (target 0)
#   drift    median RSS of the last quarter vs the first quarter of the run, after a warm-up
#            of the first tenth                                                    (target < 10%)
# Exits 1 when a target is missed.
#   scripts/soak.sh [--duration=10m] [--load=0.7] [--interval=5] [--threads=2]
#                   [--model_dir=models/dates] [--server=build/attnserve]
#                   [--bench=build/attnserve-bench]
# ctest runs a 20 s version (soak_short). Needs jq.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10m
LOAD=0.7
INTERVAL=5
THREADS=2
MODEL_DIR=models/dates
SERVER=build/attnserve
BENCH=build/attnserve-bench
for arg in "$@"; do
  case "$arg" in
    --duration=*) DURATION=${arg#*=} ;;
    --load=*) LOAD=${arg#*=} ;;
    --interval=*) INTERVAL=${arg#*=} ;;
    --threads=*) THREADS=${arg#*=} ;;
    --model_dir=*) MODEL_DIR=${arg#*=} ;;
    --server=*) SERVER=${arg#*=} ;;
    --bench=*) BENCH=${arg#*=} ;;
    *) sed -n '2,11p' "$0"; exit 64 ;;
  esac
done
OUT=$(mktemp -d /tmp/attnserve-soak.XXXXXX)
# shellcheck source=scripts/load_common.sh
source scripts/load_common.sh
trap stop_server EXIT
REQUEST_FLAGS=(--sources_file="$(dates_sources)" --text --max_new_tokens=16)

start_server --max_queue_size=256  # the default, said out loud
CAPACITY=$(capacity 5)
RATE=$(awk -v c="$CAPACITY" -v l="$LOAD" 'BEGIN { printf "%.1f", c * l }')
echo "capacity: $CAPACITY OK/s (closed loop, 32 in flight); soaking at $RATE/s for $DURATION"

bench "$OUT/soak.json" --rps="$RATE" --arrivals=poisson --duration="$DURATION" --timeout=30s \
  "${REQUEST_FLAGS[@]}" &
BENCH_PID=$!
sample_rss "$SERVER_PID" "$INTERVAL" "$OUT/rss.txt"
wait "$BENCH_PID"
stop_server

/usr/bin/python3 - "$OUT" "$SERVER_EXIT" <<'PY'
import json, statistics, sys
out, exit_code = sys.argv[1:]
report = json.load(open(f"{out}/soak.json"))
samples = [int(line.split()[1]) for line in open(f"{out}/rss.txt") if len(line.split()) == 2]
errors = report["count"] - report["ok"] + report["dropped_by_client"]
steady = samples[len(samples) // 10:]  # the first tenth is warm-up
quarter = max(1, len(steady) // 4)
first, last = statistics.median(steady[:quarter]), statistics.median(steady[-quarter:])
drift = (last - first) / first
lat = report["latency_ms"] or {}
print(f"soak: {report['count']} calls in {report['elapsed_s']:.0f} s "
      f"({report['requests_per_s']:.1f}/s): "
      + ", ".join(f"{c} {n}" for c, n in sorted(report["status_codes"].items()))
      + f"; dropped by client {report['dropped_by_client']}")
if lat:
    print(f"  latency p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms")
print(f"memory: {len(samples)} samples, {min(samples) / 1024:.1f}..{max(samples) / 1024:.1f} MB; "
      f"first-quarter median {first / 1024:.1f} MB, last-quarter median {last / 1024:.1f} MB, "
      f"drift {100 * drift:+.2f}%")
print(f"server exit code after SIGTERM: {exit_code}")
checks = [("errors == 0", errors == 0), ("|drift| < 10%", abs(drift) < 0.10),
          ("clean exit", exit_code == "0")]
for name, ok in checks:
    print(f"  {'PASS' if ok else 'FAIL'}  {name}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
PY
