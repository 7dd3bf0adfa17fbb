#!/usr/bin/env bash
# The main job: builds kilnd and kiln into ./bin, starts kilnd on its
# built-in default configuration with its state in ./.state, imports the
# busybox base image (made from Debian's busybox-static: nothing comes from
# Docker Hub), builds the example image (examples/hello) with
# `kiln build -t my-hello-app`, runs it, rebuilds it from the cache, and
# stops the daemon. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

ensure_go
ensure_apt runc crun busybox-static

say "building bin/kilnd and bin/kiln"
version=$(git describe --tags --dirty 2>/dev/null || echo v0.0.0-dev)
revision=$(git rev-parse --short HEAD 2>/dev/null || true)
ldflags="-X main.version=$version -X main.revision=$revision"
go build -ldflags "$ldflags" -o bin/kilnd ./cmd/kilnd
go build -ldflags "-X main.version=$version" -o bin/kiln ./cmd/kiln

state="$(pwd)/.state"
mkdir -p "$state"
sock="$state/kilnd.sock"
if [ ${#sock} -gt 100 ]; then
	# A unix socket path must fit in 108 bytes.
	sock="$(mktemp -d /tmp/kiln-demo.XXXXXX)/kilnd.sock"
	say "the checkout's path is too long for a socket; using $sock"
fi
addr="unix://$sock"

say "writing the built-in configuration to .state/kilnd.toml (bin/kilnd --print-default-config)"
./bin/kilnd --print-default-config >"$state/kilnd.toml"

say "starting kilnd: root .state/root, socket $addr, log .state/kilnd.log"
./bin/kilnd --config "$state/kilnd.toml" --root "$state/root" --addr "$addr" >"$state/kilnd.log" 2>&1 &
pid=$!
stop() {
	if kill -0 "$pid" 2>/dev/null; then
		say "stopping kilnd (SIGTERM)"
		kill -TERM "$pid"
		wait "$pid" || true
	fi
}
trap stop EXIT

for _ in $(seq 1 300); do
	[ -S "$sock" ] && break
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$state/kilnd.log" >&2
		die "kilnd exited before it was ready"
	fi
	sleep 0.1
done
[ -S "$sock" ] || { cat "$state/kilnd.log" >&2; die "kilnd did not come up within 30s"; }

kiln() { ./bin/kiln --addr "$addr" "$@"; }

say "kiln info"
kiln info

say "making the busybox base image from Debian's busybox-static (.state/busybox.tar)"
go run ./hack/fixture save "$state/busybox.tar"
say "kiln image import .state/busybox.tar busybox"
kiln image import "$state/busybox.tar" busybox

say "kiln build -t my-hello-app examples/hello"
cat examples/hello/Dockerfile
kiln build --progress plain -t my-hello-app examples/hello

say "kiln run my-hello-app"
kiln run my-hello-app

say "kiln build -t my-hello-app examples/hello (again: every step comes from the cache)"
kiln build --progress plain -t my-hello-app examples/hello

say "kiln images"
kiln images
