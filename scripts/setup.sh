#!/usr/bin/env bash
# Installs every build, test and dev-tool dependency of attnserve with apt on Debian 12.
# Idempotent: packages already present are skipped by apt; safe to run on every build.
#   scripts/setup.sh            build + test + dev-tool dependencies (what .ci/run needs)
#   scripts/setup.sh --build    only what building and the unit tests need (the image's
#                               builder stage)
#   scripts/setup.sh --runtime  only what running the server needs (no compilers)
# It starts no service: Debian's prometheus package (installed for the tests, which start
# their own) would start a system Prometheus on port 9090; setup.sh keeps it from starting
# and disables it, unless it was already running before.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libdnnl-dev ocl-icd-opencl-dev libabsl-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
)
# Dev tools: golden files and training use Debian's torch on the system python.
# prometheus is the real server (with promtool): the metrics integration test scrapes the
# service with it and checks deploy/prometheus with promtool. openssl makes the TLS tests'
# certificates; jq reads attnserve-bench's reports in scripts/soak.sh (a ctest) and overload.sh.
# clang-format only formats code. python3-sentencepiece is the reference the SentencePiece
# goldens come from (scripts/make_spm_golden.py); nothing we build links libsentencepiece.
TOOL_PKGS=(python3 python3-torch python3-numpy python3-grpcio python3-sentencepiece prometheus
           openssl jq clang-format)
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
# Packages that start a system service on install which the project never asked for.
QUIET_SERVICES=(prometheus)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
# Overridable for tests/scripts/setup_test.sh, which runs this against stubs.
POLICY_RC_D=${ATTNSERVE_POLICY_RC_D:-/usr/sbin/policy-rc.d}
SYSTEMD_DIR=${ATTNSERVE_SYSTEMD_DIR:-/run/systemd/system} # exists when systemd is PID 1
INIT_D=${ATTNSERVE_INIT_D:-/etc/init.d}

missing() {
  local out=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
  done
  echo "${out[@]:-}"
}

has_systemd() { [[ -d $SYSTEMD_DIR ]] && command -v systemctl >/dev/null; }

service_running() { # name
  if has_systemd; then
    systemctl is-active --quiet "$1" 2>/dev/null
  else
    # sysvinit or a container: the init script's status, or a process of that name.
    { [[ -x $INIT_D/$1 ]] && "$INIT_D/$1" status >/dev/null 2>&1; } || pgrep -x "$1" >/dev/null 2>&1
  fi
}

# Stops and disables a service this run installed (and did not find running).
quiet_service() { # name
  if has_systemd; then
    $SUDO systemctl disable --now "$1" >/dev/null 2>&1 || true
  else
    if [[ -x $INIT_D/$1 ]]; then
      $SUDO "$INIT_D/$1" stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null; then
      $SUDO update-rc.d "$1" disable >/dev/null 2>&1 || true
    fi
  fi
  if service_running "$1"; then
    echo "setup: warning: could not stop the $1 service; stop it yourself" >&2
  else
    echo "setup: left the $1 service stopped and disabled (the tests start their own)"
  fi
}

case ${1:-} in
  --runtime) pkgs=("${RUNTIME_PKGS[@]}") ;;
  --build) pkgs=("${BUILD_PKGS[@]}") ;;
  "") pkgs=("${BUILD_PKGS[@]}" "${TOOL_PKGS[@]}" "${HARDEN_PKGS[@]}") ;;
  *) echo "usage: scripts/setup.sh [--build | --runtime]" >&2; exit 64 ;;
esac
todo=$(missing "${pkgs[@]}")
if [[ -z "${todo// /}" ]]; then
  echo "setup: all packages present"
  exit 0
fi

# The services this run installs that were not running before: kept from starting.
quiet=()
for s in "${QUIET_SERVICES[@]}"; do
  if [[ " $todo " == *" $s "* ]] && ! service_running "$s"; then quiet+=("$s"); fi
done
# invoke-rc.d and deb-systemd-invoke ask policy-rc.d before a package's postinst starts its
# service; exit 101 means "not now". An existing policy (e.g. Docker's, which denies all) is
# left as it is.
own_policy=""
if ((${#quiet[@]})) && [[ ! -e $POLICY_RC_D ]]; then
  own_policy=$POLICY_RC_D
  trap '$SUDO rm -f "$own_policy"' EXIT
  $SUDO tee "$own_policy" >/dev/null <<EOF
#!/bin/sh
# Written by attnserve's scripts/setup.sh while it installs packages; removed afterwards.
for arg in "\$@"; do
  case "\$arg" in ${quiet[*]// /|}) exit 101 ;; esac
done
exit 0
EOF
  $SUDO chmod 0755 "$own_policy"
fi

echo "setup: installing: $todo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $todo

if [[ -n $own_policy ]]; then
  $SUDO rm -f "$own_policy"
  trap - EXIT
fi
for s in "${quiet[@]}"; do quiet_service "$s"; done
