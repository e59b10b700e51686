#!/usr/bin/env bash
# Builds the Dockerfile and proves the image without a Docker engine or a registry
# (docs/deploy.md): debootstrap makes debian:bookworm locally, buildah builds the image
# (its builder stage runs the unit tests), podman runs it; then health SERVING, one
# Generate, a /metrics scrape, and SIGTERM -> a clean exit 0. Run as root (CI does).
#   scripts/container_test.sh              IMAGE=... to name the image, REBASE=1 to remake
#                                          the base image even when it exists
#   scripts/container_test.sh --prepare    only installs the tools, makes the base image and
#                                          builds each stage's package steps in both formats
#                                          (network and disk, little CPU: .ci/run does it
#                                          while scripts/test.sh compiles)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/attnserve:test}
BASE=localhost/debian:bookworm # what `FROM debian:bookworm` resolves to, with --pull=never
WORK=${WORK:-/var/tmp/attnserve-container-test}
NAME=attnserve-ct-$$
# The builds' compiler cache (Dockerfile: a ccache/ folder mounted at /mnt); kept between
# runs like the layers, `rm -rf` it to start cold.
MNT=$WORK/build-mnt
prepare_only=
case ${1:-} in
  --prepare) prepare_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--prepare]" >&2; exit 2 ;;
esac
# env-notes: the default crun fails here on rlimits and cgroups; runc with explicit limits works.
RUN=(podman --runtime runc run --ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

passed=0
log() { printf 'container_test: %s\n' "$*" >&2; }
ok() { passed=$((passed + 1)); log "ok: $*"; }
fail() {
  log "FAIL: $*"
  if podman container exists "$NAME" 2>/dev/null; then
    log "logs of $NAME:"
    podman logs "$NAME" 2>&1 | tail -n 30 >&2 || true
  fi
  echo "container_test: $passed passed, 1 failed"
  exit 1
}
cleanup() { podman rm -f -i -t 0 "$NAME" "$NAME-env" "$NAME-flag" >/dev/null 2>&1 || true; }
trap cleanup EXIT
SECONDS=0
mkdir -p "$WORK"

# --- 1. Tools, installed the way scripts/setup.sh does (idempotent) -------------------------
PKGS=(buildah podman runc debootstrap debian-archive-keyring curl python3)
todo=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || todo+=("$p")
done
if ((${#todo[@]})); then
  log "installing: ${todo[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${todo[@]}"
fi

# --- 2. debian:bookworm, made locally ------------------------------------------------------
# The URI of the Debian suite $1 in this machine's apt sources (deb822 or one-line), so that
# the image and the apt-get calls inside the build use the mirror this machine can reach.
debian_uri() {
  local uri
  uri=$(awk -v suite="$1" 'BEGIN { RS = "" }
          $0 ~ ("Suites:[^\n]*[ \t]" suite "([ \t\n]|$)") && match($0, /URIs:[ \t]*[^ \t\n]+/) {
            u = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); print u; exit }' \
          /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [[ -z $uri ]]; then
    uri=$(sed -E 's/\[[^]]*\]//' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk -v suite="$1" '$1 == "deb" && $3 == suite { print $2; exit }' || true)
  fi
  echo "${uri:-$2}"
}

if [[ -z ${REBASE:-} ]] && podman image exists "$BASE"; then
  log "base image $BASE exists (REBASE=1 remakes it)"
else
  mirror=$(debian_uri bookworm http://deb.debian.org/debian)
  security=$(debian_uri bookworm-security http://deb.debian.org/debian-security)
  log "debootstrap bookworm from $mirror"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    fail "debootstrap failed, see $WORK/debootstrap.log"
  cat >"$WORK/rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
  # As in Docker's debian images: no package lists or cached .debs in the base layer.
  rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin \
         "$WORK/rootfs/var/cache/apt/archives/"*.deb
  tar -C "$WORK/rootfs" -c . | podman import -q - "$BASE" >/dev/null
  rm -rf "$WORK/rootfs"
  log "base image made in ${SECONDS}s"
fi

# --- 3. Build (the builder stage runs the unit tests) --------------------------------------
# --format docker keeps HEALTHCHECK (OCI images have none); --layers caches each step, so a
# rerun that changed only the runtime stage or the docs does not rebuild the code.
# -v $MNT:/mnt: the compiler cache the Dockerfile's compile step uses when it is there.
mkdir -p "$MNT/ccache"
[[ -f $MNT/ccache/ccache.conf ]] || echo "max_size = 2G" >"$MNT/ccache/ccache.conf"
BUD=(buildah bud --isolation chroot --pull=never --layers --force-rm -v "$MNT:/mnt")

if [[ -n $prepare_only ]]; then
  # Each stage's packages (its instructions up to its RUN of setup.sh: apt and dpkg, little
  # CPU), in both formats: --layers keeps these steps, and the builds below take them from
  # the cache, as a rerun does (same base, same instructions, same setup.sh).
  for stage in 1 2; do
    awk -v stage="$stage" '/^FROM /{n++} n == stage {print}
      n == stage && /^RUN .*setup\.sh --/ {run = 1} run && !/\\$/ {exit}' Dockerfile \
      >"$WORK/packages-$stage.Dockerfile"
    for format in docker oci; do
      "${BUD[@]}" --format "$format" -f "$WORK/packages-$stage.Dockerfile" . \
        >"$WORK/packages-$stage-$format.log" 2>&1 ||
        { tail -n 40 "$WORK/packages-$stage-$format.log" >&2; fail "stage $stage's packages ($format) failed"; }
    done
  done
  log "prepared: tools, $BASE and the stages' packages in ${SECONDS}s"
  exit 0
fi

# The ccache hits of a build's compile step, from its log (none when the step was cached).
hits() { grep -m1 -o 'Hits: *[0-9]* / *[0-9]*' "$1" | tr -s ' ' || echo "compile step cached"; }
t0=$SECONDS
"${BUD[@]}" --format docker -t "$IMAGE" . \
  >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; fail "build failed ($WORK/build.log)"; }
ok "image built, unit tests passed in its builder stage ($((SECONDS - t0))s; ccache $(hits "$WORK/build.log"))"
# Once more in buildah's (and podman's) default format, OCI, which ignores SHELL: the
# Dockerfile must not depend on it. Every step runs again (buildah reuses no layer of the
# other format), the compile from the cache the first build filled.
t0=$SECONDS
env -u BUILDAH_FORMAT "${BUD[@]}" -t "$IMAGE-oci" . >"$WORK/build-oci.log" 2>&1 ||
  { tail -n 40 "$WORK/build-oci.log" >&2; fail "build in the OCI format failed ($WORK/build-oci.log)"; }
[[ $(podman image inspect --format '{{.ManifestType}}' "$IMAGE-oci") == *oci* ]] ||
  fail "$IMAGE-oci is not an OCI image"
"${RUN[@]}" --rm --network none --entrypoint /usr/local/bin/attnserve "$IMAGE-oci" --help \
  >"$WORK/help.out" 2>&1 || fail "attnserve --help in the OCI image failed: $(cat "$WORK/help.out")"
podman rmi -f "$IMAGE-oci" >/dev/null 2>&1 || true
ok "the Dockerfile builds in the OCI format too ($((SECONDS - t0))s; ccache $(hits "$WORK/build-oci.log"))"

# --- 4. The image's configuration ----------------------------------------------------------
inspect() { podman image inspect --format "$1" "$IMAGE"; }
[[ $(inspect '{{.Config.User}}') == 10001:10001 ]] || fail "image user is not 10001:10001"
[[ $(inspect '{{json .Config.Entrypoint}}') == *'"/usr/bin/tini","--"'* ]] || fail "tini is not the entrypoint"
for port in 50051/tcp 8002/tcp; do
  [[ $(inspect '{{json .Config.ExposedPorts}}') == *"\"$port\""* ]] || fail "$port is not exposed"
done
[[ $(inspect '{{json .Config.Healthcheck}}') == *attnserve-cli*health* ]] || fail "no HEALTHCHECK with attnserve-cli health"
[[ $(inspect '{{json .Config.Env}}') == *OMP_WAIT_POLICY=passive* ]] || fail "OMP_WAIT_POLICY=passive not set"
[[ $(inspect '{{json .Config.Env}}') == *GOMP_SPINCOUNT=1000* ]] || fail "GOMP_SPINCOUNT=1000 not set"
ok "image config: user 10001, tini entrypoint, ports 50051 8002, HEALTHCHECK, OpenMP waiting"
# No toolchain in the runtime stage ($t expands inside the container).
# shellcheck disable=SC2016
tools=$("${RUN[@]}" --rm --network none --entrypoint /bin/sh "$IMAGE" -c \
  'for t in cc gcc g++ c++ ld as cmake ninja make; do command -v $t || true; done' 2>"$WORK/run.err") ||
  fail "cannot run the image: $(cat "$WORK/run.err")"
[[ -z $tools ]] || fail "the runtime image has build tools: $tools"
size=$(inspect '{{.Size}}')
ok "no build tools in the runtime image ($((size / 1000000)) MB)"

# --- 5. The model directory follows the env and the flag -----------------------------------
# A missing model stops startup with exit 1 and names the directory: cheap proof of which
# directory the server was given.
expect_model_dir() { # container-name, expected dir, podman run arguments...
  local name=$1 dir=$2 out rc=0
  shift 2
  out=$(timeout 60 "${RUN[@]}" --name "$name" --network none "$@" 2>&1) || rc=$?
  podman rm -f "$name" >/dev/null 2>&1 || true
  if ((rc != 1)) || [[ $out != *"cannot load model $dir"* ]]; then
    fail "expected exit 1 naming $dir, got $rc: $out"
  fi
}
expect_model_dir "$NAME-env" /from/env -e ATTNSERVE_MODEL_DIR=/from/env "$IMAGE"
ok "ATTNSERVE_MODEL_DIR sets the model directory"
expect_model_dir "$NAME-flag" /from/flag -e ATTNSERVE_MODEL_DIR=/from/env "$IMAGE" --model_dir=/from/flag
ok "--model_dir overrides it"

# --- 6. Serve: health, Generate, /metrics, SIGTERM -----------------------------------------
# Host network (env-notes) on free ports, given as flags: this also proves that
# `run IMAGE --flag` reaches the server. --cpus=1: the entrypoint must pick 1 thread.
read -r grpc_port metrics_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
# (podman's complaints that it has no systemd to time the HEALTHCHECK go to run.err: the
# test runs the check itself with `podman healthcheck run`.)
"${RUN[@]}" -d --name "$NAME" --network host --cpus=1 "$IMAGE" \
  --port="$grpc_port" --metrics_port="$metrics_port" >/dev/null 2>"$WORK/run.err" ||
  fail "podman run failed: $(cat "$WORK/run.err")"

t0=$SECONDS
until podman healthcheck run "$NAME" >/dev/null 2>>"$WORK/run.err"; do
  [[ $(podman inspect --format '{{.State.Running}}' "$NAME") == true ]] || fail "the server exited before SERVING"
  ((SECONDS - t0 < 120)) || fail "not healthy (SERVING) within 120s"
  sleep 1
done
ok "the image's HEALTHCHECK passes (SERVING) after $((SECONDS - t0))s"
startup=$(podman logs "$NAME" 2>/dev/null | grep -m1 '^attnserve: serving' || true)
[[ $startup == *"on 0.0.0.0:$grpc_port"* ]] || fail "startup line does not name port $grpc_port: $startup"
[[ $startup == *" threads=1 (OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000),"* ]] ||
  fail "threads should follow the 1-CPU quota, with the image's OpenMP waiting: $startup"
ok "flags reach the server (port $grpc_port), threads=1 from the 1-CPU quota"
[[ $(podman exec "$NAME" id -u) == 10001 ]] || fail "the server does not run as uid 10001"
[[ $(podman exec "$NAME" cat /proc/1/comm) == tini ]] || fail "PID 1 is not tini"
ok "runs as uid 10001 under tini (PID 1)"

cli=(podman exec "$NAME" attnserve-cli --addr="127.0.0.1:$grpc_port")
"${cli[@]}" health --service=attnserve.v1.Seq2Seq >/dev/null || fail "attnserve.v1.Seq2Seq is not SERVING"
ok "attnserve-cli health: attnserve.v1.Seq2Seq SERVING"
answer=$("${cli[@]}" generate --text="Monday, 23 November 2026" --timeout=30s 2>"$WORK/cli.err") ||
  fail "Generate failed: $(cat "$WORK/cli.err")"
[[ $answer == 2026-11-23 ]] || fail "Generate answered '$answer', expected 2026-11-23"
ok "Generate: 'Monday, 23 November 2026' -> $answer"

metrics=$(curl -fsS --max-time 10 "http://127.0.0.1:$metrics_port/metrics") || fail "cannot scrape /metrics"
grep -q '^attnserve_requests_total{code="OK",method="Generate",protocol="seq2seq"} 1$' <<<"$metrics" ||
  fail "/metrics does not count the Generate: $(grep attnserve_requests_total <<<"$metrics")"
grep -q '^attnserve_model_info{.*model="dates"' <<<"$metrics" || fail "/metrics has no attnserve_model_info for dates"
ok "/metrics (host side) counts the Generate"

t0=$SECONDS
podman kill --signal TERM "$NAME" >/dev/null 2>>"$WORK/run.err" || fail "cannot send SIGTERM"
code=$(timeout 60 podman wait "$NAME" 2>>"$WORK/run.err") || fail "no exit within 60s of SIGTERM"
((code == 0)) || fail "exit code $code after SIGTERM, expected 0"
# The logs whole, then grep: `podman logs | grep -q` fails under pipefail whenever grep's
# early exit makes podman's next write a SIGPIPE (seen in a run whose logs had the line).
logs=$(podman logs "$NAME" 2>&1) || fail "cannot read the logs of $NAME"
grep -q 'SIGTERM: draining' <<<"$logs" || fail "the server did not see SIGTERM (tini must forward it)"
ok "SIGTERM (through tini) -> drain -> exit 0 in $((SECONDS - t0))s"

log "done in ${SECONDS}s"
echo "container_test: $passed passed, 0 failed"
