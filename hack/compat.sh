#!/usr/bin/env bash
# Regenerates the BuildKit goldens of the compatibility suite
# (e2e/testdata/compat/*.golden): builds buildkitd and buildctl at the
# pinned version into bin/tools, starts a docker-registry on 127.0.0.1
# holding the busybox fixture (the docker.io mirror, so nothing is pulled
# from Docker Hub) and a buildkitd with the runc worker on a scratch root,
# then runs TestCompat in update mode, which builds every case with
# buildctl and writes its dump. Run as root.
#
#   hack/compat.sh                 regenerate every golden
#   hack/compat.sh 'copy-.*'       only the cases whose name matches
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

BUILDKIT_VERSION=v0.34.2

ensure_go
ensure_apt runc docker-registry busybox-static
[ "$(id -u)" = 0 ] || die "run as root: buildkitd runs build steps with runc"

ensure_buildkit_tools
ensure_buildkitd

work=$(mktemp -d /tmp/kiln-compat.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	# buildkitd leaves its overlay mounts when killed mid-build.
	{ grep -o " $work/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount "$m" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

port=$(( 20000 + RANDOM % 20000 ))
reg="127.0.0.1:$port"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  inmemory: {}
http:
  addr: $reg
  secret: compat
EOF
say "starting docker-registry on $reg"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fs "http://$reg/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
go run ./hack/fixture push "$reg/library/busybox:latest"

sock="unix://$work/buildkitd.sock"
cat >"$work/buildkitd.toml" <<EOF
root = "$work/root"
[grpc]
  address = ["$sock"]
[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  gc = false
[worker.containerd]
  enabled = false
[registry."docker.io"]
  mirrors = ["$reg"]
[registry."$reg"]
  http = true
  insecure = true
EOF
say "starting buildkitd $BUILDKIT_VERSION"
bin/tools/buildkitd --config "$work/buildkitd.toml" >"$work/buildkitd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do bin/tools/buildctl --addr "$sock" debug workers >/dev/null 2>&1 && break; sleep 0.2; done
bin/tools/buildctl --addr "$sock" debug workers >/dev/null || { cat "$work/buildkitd.log" >&2; die "buildkitd did not start"; }

run='TestCompat'
if [ $# -gt 0 ]; then
	run="TestCompat/case/^($1)\$"
fi
say "building the cases with BuildKit and writing the goldens"
KILN_COMPAT_BUILDKIT="$sock" KILN_COMPAT_BUILDCTL="$(pwd)/bin/tools/buildctl" \
	go test ./e2e -run "$run" -count=1 -timeout 30m
say "goldens written: git diff e2e/testdata/compat shows what changed"
