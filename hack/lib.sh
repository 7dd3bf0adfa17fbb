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
