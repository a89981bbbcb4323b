#!/usr/bin/env bash
# go-tool.sh — builds (or reuses) one Go tool that tollgate's tests and packaging use, from the Go module proxy
# at a pinned version, cached OUTSIDE the repo by name and version (never commit binaries):
#
#   ${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/tools/<name>/<version>/<name>
#
# Usage: scripts/go-tool.sh NAME        prints the binary's absolute path on stdout (progress on stderr)
#        scripts/go-tool.sh --list      prints the known tools with their package and version
# The tools are the ones whose main package builds with plain `go install PKG@VERSION` (a module without
# replace directives). Components that need a wrapper module (kube-*, etcd) live in k8s-binaries.sh; those
# needing cgo or build tags say so in their own script. Override a version with <NAME>_VERSION (upper case,
# dashes as underscores), e.g. HELM_VERSION=v4.3.0.
# Env: TOLLGATE_CACHE, GO (go binary), GOPROXY (default https://proxy.golang.org).
set -euo pipefail

# name|package|default version|argument that makes the binary print its version (the cache check runs it)
TOOLS=(
  "helm|helm.sh/helm/v4/cmd/helm|v4.3.1|version"
  "crane|github.com/google/go-containerregistry/cmd/crane|v0.22.1|version"
)

log() { printf 'go-tool: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${TOOLS[@]}" | tr '|' '\t'
  exit 0
fi
name="${1:-}"
[[ -n "$name" ]] || die "usage: scripts/go-tool.sh NAME (scripts/go-tool.sh --list shows the names)"

row=""
for t in "${TOOLS[@]}"; do [[ "${t%%|*}" == "$name" ]] && row="$t"; done
[[ -n "$row" ]] || die "unknown tool '$name' (known: $(printf '%s ' "${TOOLS[@]%%|*}"))"
IFS='|' read -r _ pkg version version_arg <<<"$row"
override_var="$(tr 'a-z-' 'A-Z_' <<<"$name")_VERSION"
version="${!override_var:-$version}"
[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$override_var must look like v1.2.3, got '$version'"

CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
dest="$CACHE_ROOT/tools/$name/$version/$name"
usable() { [[ -x "$1" ]] && "$1" "$version_arg" >/dev/null 2>&1; }
if usable "$dest"; then
  printf '%s\n' "$dest"
  exit 0
fi

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || die "no Go toolchain (set GO=/path/to/go)"
mkdir -p "$CACHE_ROOT/tools"
# One builder per tool at a time; a second caller waits, then finds the binary and reuses it.
exec 9>"$CACHE_ROOT/tools/.$name.lock"
flock 9
if usable "$dest"; then
  printf '%s\n' "$dest"
  exit 0
fi

export GOCACHE="$CACHE_ROOT/go/build"
export GOMODCACHE="$CACHE_ROOT/go/mod"
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
export GOTOOLCHAIN=local
export GOFLAGS="-modcacherw -buildvcs=false"
export CGO_ENABLED=0
export GOWORK=off

tmp="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-go-tool.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log "building $pkg@$version -> $dest"
start=$SECONDS
GOBIN="$tmp" nice -n 10 "$GO" install -trimpath -ldflags="-s -w" "$pkg@$version" >&2 ||
  die "go install $pkg@$version failed"
built="$tmp/$(basename "$pkg")"
[[ -x "$built" ]] || die "go install $pkg@$version produced no $(basename "$pkg")"
usable "$built" || die "built $pkg@$version but '$(basename "$pkg") $version_arg' fails"
mkdir -p "$(dirname "$dest")"
mv -f "$built" "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest"
log "built $name $version in $((SECONDS - start))s ($(du -h "$dest" | cut -f1))"
printf '%s\n' "$dest"
