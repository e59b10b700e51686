# attnserve image (docs/deploy.md): the server, its CLI and the bundled dates model on
# debian:bookworm. Proved by scripts/container_test.sh (buildah, no Docker engine needed).
#
#   docker build -t attnserve .           # or: podman build / buildah bud, either format
#   docker run --rm -p 50051:50051 -p 8002:8002 attnserve [attnserve flags, e.g. --port=6000]
#
# Every RUN is plain POSIX sh (each starts with `set -eu`) or a script: there is no SHELL
# instruction, which the OCI image format (podman's and buildah's default) ignores. In the
# OCI format the image only lacks HEALTHCHECK (OCI has none): `--format docker` keeps it.

# ---- builder: the -dev packages, a Release build, the unit tests ------------------------
FROM debian:bookworm AS builder

# The build packages are scripts/setup.sh's BUILD_PKGS (one list for machines and image),
# and ccache for a build that mounts a compiler cache (below).
COPY scripts/setup.sh /tmp/setup.sh
RUN set -eu; /tmp/setup.sh --build; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ccache; \
    rm -rf /tmp/setup.sh /var/lib/apt/lists/*

# Only what the build and the tests read, so that editing docs/ or scripts/ keeps the
# build layers cached. deploy/ is read by the metrics tests (deploy_config_test.cc).
WORKDIR /src
COPY CMakeLists.txt ./
COPY proto proto
COPY engine engine
COPY server server
COPY client client
COPY tests tests
COPY models models
COPY deploy/prometheus deploy/prometheus
COPY deploy/grafana deploy/grafana
# A build that mounts a directory with a ccache/ folder at /mnt (FHS: a temporary mount,
# empty in the base image, so no stage gains a mount point) compiles through ccache there:
# scripts/container_test.sh does (buildah bud -v DIR:/mnt), so that its second build, in
# the OCI format, compiles from the first's results. Without one the compile is plain.
# (CMake reads CMAKE_<LANG>_COMPILER_LAUNCHER from the environment.)
RUN set -eu; \
    if [ -d /mnt/ccache ]; then \
      export CCACHE_DIR=/mnt/ccache CMAKE_C_COMPILER_LAUNCHER=ccache \
             CMAKE_CXX_COMPILER_LAUNCHER=ccache; \
      ccache --zero-stats >/dev/null; \
    fi; \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DATTNSERVE_BUILD_BENCHMARKS=OFF >/dev/null; \
    cmake --build build -j"$(nproc)"; \
    if [ -d /mnt/ccache ]; then ccache --show-stats; fi

# Every gtest binary (engine, server, client, end to end), one process each: much faster
# than ctest's process per test. Left out: the suites that run Debian's prometheus/promtool,
# which the builder does not install, docs_tests and the Dockerfile's own check, which read
# docs/ and the Dockerfile (not copied, so that editing them keeps these layers), the test
# that runs scripts/attnserve-convert (Python and torch, which the builder does not have;
# the checkpoints it converts are still served as downloaded by the tests beside it), and
# ctest's script tests (scripts/test.sh runs them all).
RUN set -eu; export OMP_WAIT_POLICY=passive; \
    for t in build/tests/*_tests; do \
      [ "${t##*/}" = docs_tests ] && continue; \
      echo "${t##*/}:"; \
      "$t" --gtest_brief=1 --gtest_filter='-PromtoolTest.*:PrometheusIntegrationTest.*:DeployConfigTest.Dockerfile*:*HfCheckpointServingTest.ServesGoldenTokensAsDownloadedAndConverted*'; \
    done; \
    install -D -s -m 0755 build/attnserve build/attnserve-cli -t /out/bin

# ---- runtime: shared libraries only, no compilers ---------------------------------------
FROM debian:bookworm

# The shared libraries the binaries link (scripts/setup.sh --runtime: one list for machines
# and image), plus tini as PID 1: it forwards SIGTERM to the server (which drains, then
# exits 0) and reaps zombies.
COPY scripts/setup.sh /tmp/setup.sh
RUN set -eu; /tmp/setup.sh --runtime; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tini; \
    rm -rf /tmp/setup.sh /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log

# A fixed numeric uid, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
RUN set -eu; useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin attnserve

COPY --from=builder /out/bin/ /usr/local/bin/
COPY models/dates /opt/attnserve/models/dates
COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

# ATTNSERVE_MODEL_DIR: the model served unless --model_dir says otherwise (mount yours).
# OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000: idle OpenMP workers spin a few tens of
# microseconds (the gaps between a token step's ops), then sleep instead of spinning on CPU
# the gRPC threads (and the quota) need; the server's own choice (engine/openmp_waiting.h),
# written out so `docker inspect` shows it. The entrypoint sets the thread count from the
# CPU quota.
ENV ATTNSERVE_MODEL_DIR=/opt/attnserve/models/dates \
    OMP_WAIT_POLICY=passive \
    GOMP_SPINCOUNT=1000

USER 10001:10001
# gRPC (Seq2Seq, health, reflection) and Prometheus /metrics.
EXPOSE 50051 8002

# The port is the last --port=N among the flags the container was started with (PID 1 is
# tini, whose command line holds them). attnserve-cli health exits 0 only when SERVING,
# so a draining server turns unhealthy at once.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD port=$(tr '\0' '\n' </proc/1/cmdline | sed -n 's/^--\{0,1\}-port=//p' | tail -n 1); \
        exec attnserve-cli --addr="127.0.0.1:${port:-50051}" --timeout=4s health

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/docker-entrypoint.sh"]
