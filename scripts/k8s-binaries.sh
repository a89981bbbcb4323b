#!/usr/bin/env bash
# k8s-binaries.sh — builds (or reuses) a real kube-apiserver and etcd for tollgate's tests against a live API
# server. Go is on the machine only for this: both binaries are compiled from the Go module proxy, never
# from a git checkout, and cached OUTSIDE the repo by version (never commit them):
#
#   ${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/k8s/<K8S_VERSION>/kube-apiserver
#   ${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/etcd/<ETCD_VERSION>/etcd
#
# If both exist and answer `--version`, nothing is built. Otherwise a throwaway wrapper Go module is generated
# in a temp dir: it requires k8s.io/kubernetes at K8S_VERSION and replaces every k8s.io staging module that
# k8s.io/kubernetes requires at v0.0.0 (its own go.mod points them at ./staging/…, which does not apply to a
# dependency) with the published tag v0.<minor>.<patch>; the list is read from that go.mod, so it follows the
# version. etcd is the main package of go.etcd.io/etcd/server/v3, built from a second wrapper module (its own
# go.mod has relative replace directives, so `go install …@version` refuses it).
#
# The Go build and module caches live under the cache dir too, so a rebuild after a version bump is fast.
# Progress goes to stderr; stdout is exactly two lines, so `eval "$(scripts/k8s-binaries.sh)"` works:
#   KUBE_APISERVER=<path>
#   ETCD=<path>
# Env: K8S_VERSION, ETCD_VERSION, TOLLGATE_CACHE, GO (go binary), GOPROXY (default https://proxy.golang.org).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"

CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
KUBE_APISERVER="$CACHE_ROOT/k8s/$K8S_VERSION/kube-apiserver"
ETCD="$CACHE_ROOT/etcd/$ETCD_VERSION/etcd"

log() { printf 'k8s-binaries: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "K8S_VERSION must look like v1.36.3, got '$K8S_VERSION'"
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
K8S_MINOR="${BASH_REMATCH[1]}"
[[ "$ETCD_VERSION" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "ETCD_VERSION must look like v3.6.16, got '$ETCD_VERSION'"

# A cached binary counts only if it runs.
usable() { [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1; }

report() {
  printf 'KUBE_APISERVER=%s\n' "$KUBE_APISERVER"
  printf 'ETCD=%s\n' "$ETCD"
}

if usable "$KUBE_APISERVER" && usable "$ETCD"; then
  report
  exit 0
fi

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || die "no Go toolchain (set GO=/path/to/go)"

mkdir -p "$CACHE_ROOT"
# One builder at a time; a second caller waits, then finds the binaries and reuses them.
exec 9>"$CACHE_ROOT/.k8s-binaries.lock"
flock 9

export GOCACHE="$CACHE_ROOT/go/build"
export GOMODCACHE="$CACHE_ROOT/go/mod"
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
export GOTOOLCHAIN=local   # never download another toolchain; fail clearly instead
export GOFLAGS="-mod=mod -modcacherw -buildvcs=false"
export CGO_ENABLED=0
export GOWORK=off

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-k8s-build.XXXXXX")"
trap 'rm -rf "$WORK" "$KUBE_APISERVER.tmp.$$" "$ETCD.tmp.$$"' EXIT

# build <wrapper dir> <package> <dest> <extra ldflags>: compiles into a temp name next to dest, checks that it
# runs, then renames it into place (atomic on one filesystem, so readers never see half a binary).
build() {
  local dir="$1" pkg="$2" dest="$3" ldflags="$4" tmp
  mkdir -p "$(dirname "$dest")"
  tmp="$dest.tmp.$$"
  log "building $pkg -> $dest"
  local start=$SECONDS
  (cd "$dir" && nice -n 10 "$GO" build -trimpath -ldflags="-s -w $ldflags" -o "$tmp" "$pkg") >&2 ||
    { rm -f "$tmp"; die "go build $pkg failed"; }
  "$tmp" --version >/dev/null 2>&1 || { rm -f "$tmp"; die "built $pkg but it does not run '--version'"; }
  mv -f "$tmp" "$dest"
  log "built $(basename "$dest") in $((SECONDS - start))s ($(du -h "$dest" | cut -f1))"
}

if ! usable "$KUBE_APISERVER"; then
  dir="$WORK/kube-apiserver"
  mkdir -p "$dir"
  printf 'module tollgate.invalid/kube-apiserver-build\n\ngo 1.26.0\n' >"$dir/go.mod"
  # Fetch k8s.io/kubernetes's go.mod to learn which staging modules it requires at v0.0.0.
  kmod="$(cd "$dir" && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$kmod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION from $GOPROXY"
  need_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$kmod")"
  have_go="$("$GO" env GOVERSION)"; have_go="${have_go#go}"
  if [[ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]]; then
    die "k8s.io/kubernetes@$K8S_VERSION needs Go >= $need_go, $GO is $have_go"
  fi
  staging="$(awk '/=> \.\/staging\/src\//{print $1}' "$kmod" | sort -u)"
  required="$(grep -Eo '^[[:space:]]*k8s\.io/[A-Za-z0-9._/-]+ v0\.0\.0([[:space:]]|$)' "$kmod" | awk '{print $1}' | sort -u)"
  replace="$(comm -12 <(printf '%s\n' "$staging") <(printf '%s\n' "$required"))"
  [[ -n "$replace" ]] || die "found no staging modules in $kmod"
  {
    printf 'module tollgate.invalid/kube-apiserver-build\n\ngo %s\n\n' "$need_go"
    printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
    while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"; done <<<"$replace"
    printf ')\n'
  } >"$dir/go.mod"
  log "wrapper replaces $(wc -l <<<"$replace") staging modules with $STAGING_VERSION"
  # What hack/lib/version.sh would stamp; /version and feature-gate emulation read it.
  v="k8s.io/component-base/version"
  ldflags="-X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$K8S_MINOR -X $v.gitTreeState=clean"
  ldflags+=" -X $v.buildDate=1970-01-01T00:00:00Z"
  build "$dir" k8s.io/kubernetes/cmd/kube-apiserver "$KUBE_APISERVER" "$ldflags"
fi

if ! usable "$ETCD"; then
  dir="$WORK/etcd"
  mkdir -p "$dir"
  printf 'module tollgate.invalid/etcd-build\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$ETCD_VERSION" >"$dir/go.mod"
  build "$dir" go.etcd.io/etcd/server/v3 "$ETCD" ""
fi

report
