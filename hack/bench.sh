#!/usr/bin/env bash
# Runs the end-to-end benchmarks (make bench): kilnd on a temporary root,
# the busybox base image in a local docker-registry, medians of several
# runs per case, printed beside BuildKit's figures. Run as root.
# BENCH_ARGS passes flags to hack/bench, e.g. BENCH_ARGS="-runs 7 -cases hello".
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

ensure_go
ensure_apt runc crun busybox-static docker-registry redis-server
ensure_buildkit_tools
ensure_buildkitd
say "go run ./hack/bench ${BENCH_ARGS:-}"
# shellcheck disable=SC2086
go run ./hack/bench ${BENCH_ARGS:-}
