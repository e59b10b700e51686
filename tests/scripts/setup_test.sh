#!/usr/bin/env bash
# scripts/setup.sh leaves no Prometheus system service running that the project did not ask
# for (Debian's prometheus package starts one on 9090 when installed). Runs setup.sh against
# stubs of apt-get, dpkg-query, systemctl, update-rc.d, pgrep and an init script, which act
# as Debian's postinst does (ask policy-rc.d, then start the service unless it says 101),
# with and without systemd, and with the service already running before.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failed=0
fail() { echo "setup_test: FAIL: $*" >&2; failed=1; }

make_stubs() { # dir state
  local bin=$1/bin state=$2
  mkdir -p "$bin" "$1/init.d"
  # Every package is installed except those not yet in $state/installed... of the ones
  # named in $state/absent.
  cat >"$bin/dpkg-query" <<STUB
#!/bin/sh
pkg=\$(eval echo "\\\${\$#}")
if grep -qx "\$pkg" "$state/absent" 2>/dev/null && ! grep -qx "\$pkg" "$state/installed" 2>/dev/null; then exit 1; fi
printf 'install ok installed'
STUB
  # apt-get install: each package's postinst asks policy-rc.d, then starts the service.
  cat >"$bin/apt-get" <<STUB
#!/bin/sh
echo "apt-get \$*" >>"$state/log"
[ "\$1" = install ] || exit 0
for p in "\$@"; do
  case "\$p" in -*|install) continue ;; esac
  echo "\$p" >>"$state/installed"
  [ -e "$1/policy-rc.d" ] && echo "policy-rc.d present during install" >>"$state/log"
  if [ -x "$1/policy-rc.d" ]; then "$1/policy-rc.d" "\$p" start; rc=\$?; else rc=0; fi
  if [ "\$rc" = 0 ]; then touch "$state/running-\$p"; echo "started \$p" >>"$state/log"; fi
done
STUB
  cat >"$bin/systemctl" <<STUB
#!/bin/sh
echo "systemctl \$*" >>"$state/log"
case "\$1" in
  is-active) [ -e "$state/running-\$3" ] ;;
  disable) [ "\$2" = --now ] && rm -f "$state/running-\$3"; exit 0 ;;
esac
STUB
  cat >"$bin/update-rc.d" <<STUB
#!/bin/sh
echo "update-rc.d \$*" >>"$state/log"
STUB
  cat >"$bin/pgrep" <<STUB
#!/bin/sh
[ -e "$state/running-\$2" ]
STUB
  cat >"$bin/id" <<'STUB'
#!/bin/sh
echo 0
STUB
  cat >"$1/init.d/prometheus" <<STUB
#!/bin/sh
echo "init.d \$*" >>"$state/log"
case "\$1" in
  status) [ -e "$state/running-prometheus" ] ;;
  stop) rm -f "$state/running-prometheus" ;;
esac
STUB
  chmod +x "$bin"/* "$1/init.d/prometheus"
}

run_setup() { # case-dir systemd(yes|no) [setup args...]
  local dir=$1 systemd=$2
  shift 2
  mkdir -p "$dir/state"
  [[ -e $dir/state/absent ]] || echo prometheus >"$dir/state/absent"
  make_stubs "$dir" "$dir/state"
  local sd=$dir/no-systemd
  if [[ $systemd == yes ]]; then sd=$dir/systemd && mkdir -p "$sd"; fi
  PATH="$dir/bin:$PATH" ATTNSERVE_POLICY_RC_D="$dir/policy-rc.d" ATTNSERVE_SYSTEMD_DIR="$sd" \
    ATTNSERVE_INIT_D="$dir/init.d" bash "$ROOT/scripts/setup.sh" "$@" >"$dir/out" 2>&1 ||
    fail "$(basename "$dir"): setup.sh failed: $(cat "$dir/out")"
}

# 1. No systemd (a container, sysvinit): prometheus installed, never started, disabled.
c=$WORK/sysv
run_setup "$c" no
grep -qx prometheus "$c/state/installed" || fail "sysv: prometheus was not installed"
[[ ! -e $c/state/running-prometheus ]] || fail "sysv: the prometheus service was left running"
grep -q "policy-rc.d present during install" "$c/state/log" || fail "sysv: no policy-rc.d during install"
[[ ! -e $c/policy-rc.d ]] || fail "sysv: setup.sh left its policy-rc.d behind"
grep -q "update-rc.d prometheus disable" "$c/state/log" || fail "sysv: prometheus not disabled"

# 2. systemd: the same, and systemctl disable --now.
c=$WORK/systemd
run_setup "$c" yes
[[ ! -e $c/state/running-prometheus ]] || fail "systemd: the prometheus service was left running"
grep -q "systemctl disable --now prometheus" "$c/state/log" || fail "systemd: prometheus not disabled"
[[ ! -e $c/policy-rc.d ]] || fail "systemd: setup.sh left its policy-rc.d behind"

# 3. Running before (someone's own Prometheus; here as if installed but absent from dpkg):
#    left running and enabled.
c=$WORK/running
mkdir -p "$c/state" && touch "$c/state/running-prometheus"
run_setup "$c" yes
[[ -e $c/state/running-prometheus ]] || fail "running: setup.sh stopped a Prometheus it found running"
if grep -q "disable" "$c/state/log"; then fail "running: setup.sh disabled a Prometheus it found running"; fi

# 4. An existing policy-rc.d (Docker's "deny all") is left exactly as it was.
c=$WORK/docker
mkdir -p "$c"
printf '#!/bin/sh\nexit 101\n' >"$c/policy-rc.d" && chmod +x "$c/policy-rc.d"
run_setup "$c" no
[[ $(cat "$c/policy-rc.d") == $'#!/bin/sh\nexit 101' ]] || fail "docker: the existing policy-rc.d was changed"
[[ ! -e $c/state/running-prometheus ]] || fail "docker: prometheus left running"

# 5. --runtime installs no prometheus and touches no service.
c=$WORK/runtime
run_setup "$c" yes --runtime
if grep -q "prometheus" "$c/state/log" 2>/dev/null; then fail "runtime: touched prometheus"; fi

if ((failed)); then exit 1; fi
echo "setup_test: 5 cases passed"
