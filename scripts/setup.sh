#!/usr/bin/env bash
# Installs every build, test and dev-tool dependency of attnserve with apt on Debian 12.
# Idempotent: packages already present are skipped by apt; safe to run on every build.
#   scripts/setup.sh            build + test dependencies (what .ci/run needs)
#   scripts/setup.sh --runtime  only what running the server needs (no compilers)
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libdnnl-dev ocl-icd-opencl-dev libabsl-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
  clang-format
)
# Dev tools: golden files and training use Debian's torch on the system python.
# prometheus is the real server (with promtool): the metrics integration test scrapes the
# service with it and checks deploy/prometheus with promtool. openssl makes the TLS tests'
# certificates; jq reads attnserve-bench's reports in scripts/soak.sh (a ctest) and overload.sh.
TOOL_PKGS=(python3 python3-torch python3-numpy python3-grpcio prometheus openssl jq)
# Hardening builds (docs/hardening-tools.md): clang and its sanitizer/libFuzzer runtimes for
# scripts/fuzz.sh, llvm for readable crash stacks. Not in BUILD_PKGS: the image needs none.
HARDEN_PKGS=(clang libclang-rt-14-dev llvm)
# What the built server and CLI link at run time (`ldd build/attnserve build/attnserve-cli`,
# then `dpkg -S`): the Dockerfile's runtime stage installs exactly these.
RUNTIME_PKGS=(
  libabsl20220623 libc-ares2 libcivetweb1 libdnnl2 libgomp1 libgrpc++1.51 libgrpc29
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprotobuf32 libre2-9 libssl3
  ocl-icd-libopencl1
)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing() {
  local out=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
  done
  echo "${out[@]:-}"
}

if [[ ${1:-} == --runtime ]]; then
  pkgs=("${RUNTIME_PKGS[@]}")
else
  pkgs=("${BUILD_PKGS[@]}" "${TOOL_PKGS[@]}" "${HARDEN_PKGS[@]}")
fi
todo=$(missing "${pkgs[@]}")
if [[ -n "${todo// /}" ]]; then
  echo "setup: installing: $todo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $todo
else
  echo "setup: all packages present"
fi
