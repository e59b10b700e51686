# shellcheck shell=bash
# Shared by scripts/overload.sh and scripts/soak.sh (sourced, not run): start build/attnserve on
# a free port, measure its capacity with attnserve-bench, sample its resident memory.
# Callers set SERVER, BENCH, MODEL_DIR, OUT (a work directory) and THREADS first.

SERVER_PID=""
SERVER_PORT=""

# start_server [extra attnserve flags...]: starts it in the background and waits for its
# startup line (printed once health is SERVING); sets SERVER_PID and SERVER_PORT. Its output
# goes to $OUT/$SERVER_LOG.out and .err (SERVER_LOG defaults to "server"): a caller running
# two servers at once gives each its own.
start_server() {
  local out="$OUT/${SERVER_LOG:-server}.out" err="$OUT/${SERVER_LOG:-server}.err"
  rm -f "$out"
  # OpenMP waiting as the caller's environment says, or else the server's own short spin
  # (docs/server.md): a long spin would compete with the gRPC threads and the load generator.
  "$SERVER" --model_dir="$MODEL_DIR" --host=127.0.0.1 --port=0 \
    --metrics_port=0 --threads="$THREADS" "$@" >"$out" 2>"$err" &
  SERVER_PID=$!
  for _ in $(seq 600); do
    if grep -q ' on 127.0.0.1:' "$out" 2>/dev/null; then
      SERVER_PORT=$(sed -n 's/.* on 127\.0\.0\.1:\([0-9]*\);.*/\1/p' "$out")
      echo "server: $(head -1 "$out")"
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "the server exited at startup:" >&2
      cat "$err" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "the server printed no startup line within 60 s" >&2
  exit 1
}

# stop_server: SIGTERM, and its exit code in SERVER_EXIT (0 = drained and exited cleanly).
# shellcheck disable=SC2034  # SERVER_EXIT is read by the scripts that source this file
stop_server() {
  SERVER_EXIT=""
  if [[ -n "$SERVER_PID" ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    SERVER_EXIT=0
    wait "$SERVER_PID" || SERVER_EXIT=$?
    SERVER_PID=""
  fi
}

# rss_kb PID: resident memory in kB (VmRSS), empty if the process is gone.
rss_kb() {
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true
}

# The held-out dates' source texts, one per line (for --sources_file --text).
dates_sources() {
  cut -f1 tests/data/dates_heldout.tsv >"$OUT/sources.txt"
  echo "$OUT/sources.txt"
}

# bench OUTPUT_JSON [attnserve-bench flags...]: one run against the server, report kept.
bench() {
  local report=$1
  shift
  "$BENCH" --addr="127.0.0.1:$SERVER_PORT" "$@" --json >"$report"
}

# capacity SECONDS: OK calls per second of a closed loop of 32 calls (after a 5 s warmup), the
# load the server can sustain; the report is kept in $OUT/capacity.json.
capacity() {
  bench "$OUT/capacity.json" --concurrency=32 --warmup=5s --duration="$1s" "${REQUEST_FLAGS[@]}"
  jq -r '.ok / .elapsed_s' "$OUT/capacity.json"
}

# sample_rss PID INTERVAL FILE: appends "seconds_since_start kB" lines to FILE while PID's
# load (the bench process BENCH_PID) runs.
sample_rss() {
  local start
  start=$(date +%s.%N)
  : >"$3"
  while kill -0 "$BENCH_PID" 2>/dev/null; do
    awk -v now="$(date +%s.%N)" -v start="$start" -v kb="$(rss_kb "$1")" \
      'BEGIN { printf "%.1f %s\n", now - start, kb }' >>"$3"
    sleep "$2"
  done
}
