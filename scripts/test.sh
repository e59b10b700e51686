#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, and runs the whole test suite (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
# Hardening (docs/hardening-tools.md), each in a build dir of its own: fuzz the model loader and
# request conversion (~2 min), then the threaded server tests under ThreadSanitizer (~3 min).
# ASan+UBSan over every test binary (scripts/sanitize.sh address, ~8 min) is left to hand runs.
scripts/fuzz.sh
scripts/sanitize.sh thread
# Tests share 2 cores between parallel test processes: passive OpenMP waiting keeps one
# process's idle team from spinning while another computes (see env-notes).
export OMP_WAIT_POLICY=passive
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 900
