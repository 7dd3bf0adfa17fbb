#!/usr/bin/env bash
# Runs every test of the project: go vet, gofmt, go mod tidy (go.mod must
# not change) and go test ./... with the root-only and end-to-end tests
# (run it as root, as CI does). Installs the Debian packages the tests use
# when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

ensure_go
# BuildKit's clients (buildctl, buildx) and Dockerfile frontend, which the
# e2e tests run (pinned; cached in bin/tools), build in the background
# while the packages install and vet and the tests that do not need them
# run: on a fresh machine that is the longest step (about 570 CPU-seconds,
# most of it buildx). The tests that need them wait for the build.
tools_log=$(mktemp)
ensure_buildkit_tools >"$tools_log" 2>&1 &
tools_pid=$!
# runc/crun run build steps, busybox-static is the test base image,
# redis-server and docker-registry are started by e2e tests on 127.0.0.1,
# apache2-utils provides htpasswd for the registry auth tests, docker.io
# the Docker engine buildx --load loads into (TestBuildxLoad starts its
# own dockerd).
ensure_apt runc crun busybox-static redis-server docker-registry git apache2-utils xz-utils bzip2 zstd openssh-client docker.io
ensure_binfmt
ensure_arm64_busybox
if [ "$(id -u)" != 0 ]; then
	say "not root: the root-only tests (mounts, runc, socket ownership) will skip"
fi

say "go vet ./..."
go vet ./...

say "gofmt"
unformatted=$(find . -name '*.go' -not -path './bin/*' -not -path './.state/*' -not -path '*/testdata/*' -print0 | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then
	printf 'gofmt: these files need formatting (gofmt -w):\n%s\n' "$unformatted" >&2
	exit 1
fi

say "go mod tidy -diff"
# go.mod lists every direct dependency as such and nothing unused.
if ! go mod tidy -diff; then
	echo 'go.mod or go.sum is not tidy: run "go mod tidy" and commit the result' >&2
	exit 1
fi

say "go test ./..."
# The race detector is on by default (about three minutes for the whole
# suite on two cores); KILN_TEST_RACE=0 turns it off.
race=(-race)
if [ "${KILN_TEST_RACE:-1}" = 0 ]; then
	race=()
fi
go test "${race[@]}" -count=1 -timeout 20m ./...

if ! wait "$tools_pid"; then
	cat "$tools_log" >&2
	die "the BuildKit tools could not be built: the tests that use them skipped"
fi
cat "$tools_log"
rm -f "$tools_log"
