#!/usr/bin/env bash
# Runs every test of the project: go vet, gofmt, go mod tidy (go.mod must
# not change) and go test ./... with the root-only and end-to-end tests
# (run it as root, as CI does). Installs the Debian packages the tests use
# when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

ensure_go
# runc/crun run build steps, busybox-static is the test base image,
# redis-server and docker-registry are started by e2e tests on 127.0.0.1,
# apache2-utils provides htpasswd for the registry auth tests.
ensure_apt runc crun busybox-static redis-server docker-registry git apache2-utils xz-utils bzip2 zstd openssh-client
ensure_binfmt
ensure_arm64_busybox
# BuildKit's own clients drive kilnd in e2e/buildkit_test.go (pinned;
# built once, then cached in bin/tools).
ensure_go_tool_module buildctl github.com/moby/buildkit/cmd/buildctl v0.34.2
ensure_go_tool_module buildx github.com/docker/buildx/cmd/buildx v0.38.2
# BuildKit's Dockerfile frontend, run by the gateway frontend tests as a
# `# syntax=` image.
ensure_dockerfile_frontend

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
