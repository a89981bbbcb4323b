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
# With arguments it builds those components instead (any of: kube-apiserver etcd kubelet kube-proxy
# kube-controller-manager kube-scheduler kubectl agnhost) and prints one NAME=<path> line for each, NAME
# upper-cased with dashes as underscores, e.g. `scripts/k8s-binaries.sh kubelet kubectl` prints KUBELET=…
# and KUBECTL=… (scripts/cluster-binaries.sh uses this). The missing k8s components build in one `go build`.
# Env: K8S_VERSION, ETCD_VERSION, TOLLGATE_CACHE, GO (go binary), GOPROXY (default https://proxy.golang.org).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"

CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"

log() { printf 'k8s-binaries: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "K8S_VERSION must look like v1.36.3, got '$K8S_VERSION'"
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
K8S_MINOR="${BASH_REMATCH[1]}"
[[ "$ETCD_VERSION" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "ETCD_VERSION must look like v3.6.16, got '$ETCD_VERSION'"

# name -> package inside k8s.io/kubernetes (etcd is built from its own module below).
declare -A PKG=(
  [kube-apiserver]=cmd/kube-apiserver [kubelet]=cmd/kubelet [kube-proxy]=cmd/kube-proxy
  [kube-controller-manager]=cmd/kube-controller-manager [kube-scheduler]=cmd/kube-scheduler
  [kubectl]=cmd/kubectl [agnhost]=test/images/agnhost
)
COMPONENTS=("$@")
[[ ${#COMPONENTS[@]} -gt 0 ]] || COMPONENTS=(kube-apiserver etcd)
for c in "${COMPONENTS[@]}"; do
  [[ "$c" == etcd || -n "${PKG[$c]:-}" ]] || die "unknown component '$c' (known: etcd ${!PKG[*]})"
done

path_of() {
  if [[ "$1" == etcd ]]; then printf '%s' "$CACHE_ROOT/etcd/$ETCD_VERSION/etcd"
  else printf '%s' "$CACHE_ROOT/k8s/$K8S_VERSION/$1"; fi
}
# A cached binary counts only if it runs (agnhost has no --version; kubectl's needs --client).
usable() {
  local path
  path="$(path_of "$1")"
  [[ -x "$path" ]] || return 1
  case "$1" in
    kubectl) "$path" version --client >/dev/null 2>&1 ;;
    agnhost) "$path" --help >/dev/null 2>&1 ;;
    *) "$path" --version >/dev/null 2>&1 ;;
  esac
}

report() {
  local c
  for c in "${COMPONENTS[@]}"; do printf '%s=%s\n' "$(tr 'a-z-' 'A-Z_' <<<"$c")" "$(path_of "$c")"; done
}

missing() { local c; for c in "${COMPONENTS[@]}"; do usable "$c" || printf '%s\n' "$c"; done; }
if [[ -z "$(missing)" ]]; then
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

# Another builder may have finished while this one waited for the lock.
if [[ -z "$(missing)" ]]; then
  report
  exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-k8s-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# install <built file> <component>: checks that it runs, then renames it into place (atomic on one
# filesystem, so readers never see half a binary).
install_built() {
  local built="$1" c="$2" dest tmp
  dest="$(path_of "$c")"
  mkdir -p "$(dirname "$dest")"
  tmp="$dest.tmp.$$"
  mv -f "$built" "$tmp"
  mv -f "$tmp" "$dest"
  usable "$c" || { rm -f "$dest"; die "built $c but it does not run"; }
  log "built $c ($(du -h "$dest" | cut -f1))"
}

k8s_missing=()
while read -r c; do [[ -n "$c" && "$c" != etcd ]] && k8s_missing+=("$c"); done < <(missing)
if [[ ${#k8s_missing[@]} -gt 0 ]]; then
  dir="$WORK/k8s"
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
  pkgs=()
  for c in "${k8s_missing[@]}"; do pkgs+=("k8s.io/kubernetes/${PKG[$c]}"); done
  log "building ${k8s_missing[*]}"
  start=$SECONDS
  mkdir -p "$WORK/out"
  # One go build for all of them: the shared packages compile once, in parallel.
  (cd "$dir" && nice -n 10 "$GO" build -trimpath -ldflags="-s -w $ldflags" -o "$WORK/out/" "${pkgs[@]}") >&2 ||
    die "go build ${pkgs[*]} failed"
  log "go build took $((SECONDS - start))s"
  for c in "${k8s_missing[@]}"; do install_built "$WORK/out/$(basename "${PKG[$c]}")" "$c"; done
fi

if ! usable etcd && printf '%s\n' "${COMPONENTS[@]}" | grep -qx etcd; then
  dir="$WORK/etcd"
  mkdir -p "$dir"
  printf 'module tollgate.invalid/etcd-build\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$ETCD_VERSION" >"$dir/go.mod"
  log "building etcd"
  (cd "$dir" && nice -n 10 "$GO" build -trimpath -ldflags="-s -w" -o "$WORK/out-etcd" go.etcd.io/etcd/server/v3) >&2 ||
    die "go build go.etcd.io/etcd/server/v3 failed"
  install_built "$WORK/out-etcd" etcd
fi

report
