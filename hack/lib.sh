#!/usr/bin/env bash
# Shared helpers for the hack/ scripts: say what is happening, install what
# is missing. Sourced, not run.

say() {
	if [ -t 1 ]; then printf '\033[1m==> %s\033[0m\n' "$*"; else printf '==> %s\n' "$*"; fi
}
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# as_root runs a command as root, with sudo when needed.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root to run: $* (install sudo or run as root)"
	fi
}

# ensure_apt installs the Debian packages that are not installed yet.
ensure_apt() {
	local missing=()
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
			missing+=("$p")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		return 0
	fi
	command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
	say "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! as_root apt-get install -y --no-install-recommends "${missing[@]}"; then
		say "refreshing the package lists (apt-get update)"
		as_root apt-get update
		as_root apt-get install -y --no-install-recommends "${missing[@]}"
	fi
}

# ensure_go finds the Go toolchain (also in /usr/local/go/bin) or explains
# how to get it. go.mod pins the version; GOTOOLCHAIN fetches it through
# the module proxy when the installed go is older but at least 1.21.
ensure_go() {
	if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
		export PATH="$PATH:/usr/local/go/bin"
	fi
	command -v go >/dev/null || die "Go is not installed: install Go $(sed -n 's/^go //p' go.mod) (https://go.dev/dl) into /usr/local/go and run this again"
	export PATH="$PATH:$(go env GOPATH)/bin"
}

# ensure_go_tool installs a Go tool at a pinned version into ./bin/tools
# unless that version is there already.
#   ensure_go_tool NAME MODULE/PATH VERSION
ensure_go_tool() {
	local name=$1 pkg=$2 version=$3 dir
	dir="$(pwd)/bin/tools"
	if [ -x "$dir/$name" ] && [ "$(cat "$dir/.$name.version" 2>/dev/null)" = "$version" ]; then
		return 0
	fi
	say "installing $name $version into bin/tools"
	mkdir -p "$dir"
	GOBIN="$dir" go install "$pkg@$version"
	echo "$version" >"$dir/.$name.version"
}

# ensure_binfmt makes foreign-architecture binaries run (multi-platform
# builds): binfmt_misc mounted, Debian's qemu-user-static registered.
ensure_binfmt() {
	if [ "$(id -u)" != 0 ]; then
		return 0
	fi
	if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
		say "mounting binfmt_misc (to run foreign-architecture steps with QEMU)"
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || { say "binfmt_misc cannot be mounted here: multi-platform steps will not run"; return 0; }
	fi
	ensure_apt qemu-user-static binfmt-support
	if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
		say "registering QEMU binfmt handlers"
		update-binfmts --enable >/dev/null 2>&1 || true
	fi
}

# ensure_arm64_busybox fetches Debian's busybox-static for arm64 into
# /usr/share/kiln (the multi-platform test image); failure only skips
# those tests.
ensure_arm64_busybox() {
	if [ "$(id -u)" != 0 ] || [ -x /usr/share/kiln/busybox-arm64 ]; then
		return 0
	fi
	say "fetching busybox-static:arm64 from Debian (multi-platform tests)"
	(
		set -e
		dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
		mkdir -p /usr/share/kiln && cd /usr/share/kiln
		apt-get download -qq busybox-static:arm64 2>/dev/null
		dpkg-deb --fsys-tarfile busybox-static_*_arm64.deb | tar -xO ./bin/busybox > busybox-arm64.tmp
		chmod 755 busybox-arm64.tmp && mv busybox-arm64.tmp busybox-arm64
	) || say "could not fetch busybox-static:arm64: the arm64 tests will skip"
}

# The BuildKit tools the tests run, pinned: BuildKit's client (buildctl)
# and Dockerfile frontend (run as a `# syntax=` image), and docker buildx
# (which requires this very BuildKit version).
BUILDKIT_VERSION=v0.34.2
BUILDX_VERSION=v0.38.2
BUILDKIT_TOOLS="github.com/moby/buildkit/cmd/buildctl@$BUILDKIT_VERSION github.com/moby/buildkit/frontend/dockerfile/cmd/dockerfile-frontend@$BUILDKIT_VERSION github.com/docker/buildx/cmd/buildx@$BUILDX_VERSION"

# go_tools_current reports whether bin/tools (DIR) holds the binary of
# every package in SPECS ("pkg@version ..."), built from exactly SPECS
# (recorded in DIR/.NAME.version).
go_tools_current() {
	local dir=$1 name=$2 specs=$3 p
	for p in $specs; do
		p=${p%@*}
		[ -x "$dir/${p##*/}" ] || return 1
	done
	[ "$(cat "$dir/.$name.version" 2>/dev/null)" = "$specs" ]
}

# ensure_go_tools NAME SPECS builds the packages SPECS names
# ("pkg@version ...") into ./bin/tools, statically, with one `go build` in
# one scratch module (bin/tools/src/NAME) so that the dependencies they
# share (most of BuildKit, containerd, grpc, otel) are compiled once.
# BuildKit's and buildx's go.mod have replace and exclude directives, so
# `go install pkg@version` refuses them. Concurrent callers (parallel
# tests, the background build of hack/test.sh) wait for one build.
ensure_go_tools() {
	local name=$1 specs=$2 dir
	dir="$(pwd)/bin/tools"
	go_tools_current "$dir" "$name" "$specs" && return 0
	mkdir -p "$dir"
	(
		exec 9>"$dir/.$name.lock"
		flock 9
		go_tools_current "$dir" "$name" "$specs" && exit 0
		start=$(date +%s)
		pkgs=()
		for p in $specs; do
			pkgs+=("${p%@*}")
		done
		say "building $specs into bin/tools"
		src="$dir/src/$name"
		rm -rf "$src" "$dir/.new-$name" && mkdir -p "$src" "$dir/.new-$name"
		cd "$src"
		go mod init tools >/dev/null 2>&1
		# shellcheck disable=SC2086
		go get $specs 2>&1 | grep -v '^go: \(added\|downloading\|upgraded\|finding\) ' || true
		CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$dir/.new-$name/" "${pkgs[@]}" 2>&1 ||
			die "could not build $specs"
		for p in "${pkgs[@]}"; do
			mv "$dir/.new-$name/${p##*/}" "$dir/${p##*/}"
		done
		echo "$specs" >"$dir/.$name.version"
		say "$name built in $(($(date +%s) - start))s"
	)
}

# ensure_buildkit_tools builds buildctl, buildx and dockerfile-frontend
# (BUILDKIT_TOOLS) into ./bin/tools.
ensure_buildkit_tools() { ensure_go_tools buildkit-tools "$BUILDKIT_TOOLS"; }

# ensure_buildkitd builds BuildKit's daemon into ./bin/tools. hack/compat.sh
# writes the goldens with it and make bench runs buildctl on it beside
# kilnd; the test suite does not need it.
ensure_buildkitd() { ensure_go_tools buildkitd "github.com/moby/buildkit/cmd/buildkitd@$BUILDKIT_VERSION"; }

# ensure_dockerfile_frontend builds BuildKit's Dockerfile frontend (with
# the other BuildKit tools; internal/testutil calls it).
ensure_dockerfile_frontend() { ensure_buildkit_tools; }
