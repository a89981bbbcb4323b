#!/usr/bin/env bash
# cluster-binaries.sh — builds (or reuses) every component of the real-cluster test harness (test/cluster/,
# issue 15) from the Go module proxy, cached OUTSIDE the repo by version (never commit binaries):
#
#   kube-apiserver, etcd, kubelet, kube-proxy, kube-controller-manager, kube-scheduler, kubectl, agnhost
#       scripts/k8s-binaries.sh (k8s.io/kubernetes with its wrapper module)
#   crane                            scripts/go-tool.sh crane (assembles images, serves the lab's registry)
#   containerd, containerd-shim-runc-v2, ctr
#                                    <cache>/containerd/<v>/  CGO_ENABLED=0, tags no_btrfs no_devmapper no_zfs
#   runc                             <cache>/runc/<v>/        cgo, libseccomp linked statically (libseccomp-dev)
#   bridge, host-local, loopback, portmap
#                                    <cache>/cni-plugins/<v>/ (one directory: containerd's CNI bin_dir)
#   flanneld                         <cache>/flannel/<v>/     from a trimmed main: vxlan, host-gw, ipip and
#                                    extension backends only; the cloud (tencentvpc), udp, ipsec and wireguard
#                                    backends are left out because one of their dependencies is refused by
#                                    the proxy. Flannel's CNI plugin is not served; the harness writes a
#                                    static bridge config instead.
#   pause                            <cache>/pause/<k8s v>/   gcc -static from the pause.c k8s.io/kubernetes
#                                    ships (build/pause/linux/pause.c)
#
# A component whose cached binary runs is not rebuilt. stdout is NAME=<path> lines only, for
# `eval "$(scripts/cluster-binaries.sh)"`: KUBE_APISERVER ETCD KUBELET KUBE_PROXY KUBE_CONTROLLER_MANAGER
# KUBE_SCHEDULER KUBECTL AGNHOST CRANE CONTAINERD CONTAINERD_SHIM CTR RUNC CNI_BIN_DIR FLANNELD PAUSE.
# Progress and timings go to stderr. Any failure exits non-zero naming the component.
# Measured on the 2-core VM at load 11-14 (shared), both scripts at once, k8s modules already downloaded:
# kubelet + kube-proxy + kube-controller-manager + kube-scheduler + kubectl + agnhost 9m05s (one go build);
# containerd 6m56s, runc 1m34s, CNI plugins 41s, flanneld 3m53s, pause <1s (13m06s, downloads included).
# Warm (everything cached): 1.5 s.
# Env: CONTAINERD_VERSION, RUNC_VERSION, CNI_PLUGINS_VERSION, FLANNEL_VERSION, K8S_VERSION, ETCD_VERSION,
#      TOLLGATE_CACHE, GO, GOPROXY.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
RUNC_VERSION="${RUNC_VERSION:-v1.5.3}"
CNI_PLUGINS_VERSION="${CNI_PLUGINS_VERSION:-v1.10.0}"
FLANNEL_VERSION="${FLANNEL_VERSION:-v0.28.10}"
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
export K8S_VERSION

CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
log() { printf 'cluster-binaries: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
for v in CONTAINERD_VERSION RUNC_VERSION CNI_PLUGINS_VERSION FLANNEL_VERSION; do
  [[ "${!v}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$v must look like v1.2.3, got '${!v}'"
done

CONTAINERD_DIR="$CACHE_ROOT/containerd/$CONTAINERD_VERSION"
RUNC="$CACHE_ROOT/runc/$RUNC_VERSION/runc"
CNI_BIN_DIR="$CACHE_ROOT/cni-plugins/$CNI_PLUGINS_VERSION"
FLANNELD="$CACHE_ROOT/flannel/$FLANNEL_VERSION/flanneld"
PAUSE="$CACHE_ROOT/pause/$K8S_VERSION/pause"
CNI_PLUGINS=(bridge host-local loopback portmap)

# Each check runs the binary the way that binary reports its version.
containerd_ok() {
  "$CONTAINERD_DIR/containerd" --version >/dev/null 2>&1 && "$CONTAINERD_DIR/ctr" --version >/dev/null 2>&1 &&
    "$CONTAINERD_DIR/containerd-shim-runc-v2" -v >/dev/null 2>&1
}
runc_ok() { "$RUNC" --version >/dev/null 2>&1; }
cni_ok() {
  local p
  for p in "${CNI_PLUGINS[@]}"; do CNI_COMMAND=VERSION "$CNI_BIN_DIR/$p" </dev/null >/dev/null 2>&1 || return 1; done
}
flannel_ok() { "$FLANNELD" --version >/dev/null 2>&1; }
pause_ok() { "$PAUSE" -v >/dev/null 2>&1; }

k8s_out="$("$HERE/k8s-binaries.sh" kube-apiserver etcd kubelet kube-proxy kube-controller-manager \
  kube-scheduler kubectl agnhost)" || die "scripts/k8s-binaries.sh failed"
crane="$("$HERE/go-tool.sh" crane)" || die "scripts/go-tool.sh crane failed"

report() {
  printf '%s\n' "$k8s_out"
  printf 'CRANE=%s\n' "$crane"
  printf 'CONTAINERD=%s\nCONTAINERD_SHIM=%s\nCTR=%s\n' "$CONTAINERD_DIR/containerd" \
    "$CONTAINERD_DIR/containerd-shim-runc-v2" "$CONTAINERD_DIR/ctr"
  printf 'RUNC=%s\nCNI_BIN_DIR=%s\nFLANNELD=%s\nPAUSE=%s\n' "$RUNC" "$CNI_BIN_DIR" "$FLANNELD" "$PAUSE"
}
all_ok() { containerd_ok && runc_ok && cni_ok && flannel_ok && pause_ok; }
if all_ok; then
  report
  exit 0
fi

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || die "no Go toolchain (set GO=/path/to/go)"
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.cluster-binaries.lock"
flock 9

export GOCACHE="$CACHE_ROOT/go/build"
export GOMODCACHE="$CACHE_ROOT/go/mod"
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -modcacherw -buildvcs=false"
export GOWORK=off

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-cluster-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# wrapper <name> <module> <version>: a throwaway module requiring module@version (go install refuses several
# packages with build tags and cgo flags in one call, and the flannel main must be trimmed).
wrapper() {
  local dir="$WORK/$1"
  mkdir -p "$dir"
  printf 'module tollgate.invalid/%s-build\n\ngo 1.26.0\n\nrequire %s %s\n' "$1" "$2" "$3" >"$dir/go.mod"
  printf '%s' "$dir"
}

# gobuild <dir> <dest dir> <tags> <ldflags> <pkg...>: one go build into a temp dir, then each binary is
# renamed into dest (atomic on one filesystem, so readers never see half a binary).
gobuild() {
  local dir="$1" dest="$2" tags="$3" ldflags="$4" start=$SECONDS f
  shift 4
  mkdir -p "$dest"
  local out
  out="$(mktemp -d "$WORK/out.XXXXXX")"
  log "building $* -> $dest"
  (cd "$dir" && nice -n 10 "$GO" build -trimpath -tags "$tags" -ldflags="-s -w $ldflags" -o "$out/" "$@") >&2 ||
    die "go build $* failed"
  for f in "$out"/*; do mv -f "$f" "$dest/.$(basename "$f").tmp.$$" && mv -f "$dest/.$(basename "$f").tmp.$$" "$dest/$(basename "$f")"; done
  log "built $* in $((SECONDS - start))s"
}

if ! containerd_ok; then
  dir="$(wrapper containerd github.com/containerd/containerd/v2 "$CONTAINERD_VERSION")"
  m=github.com/containerd/containerd/v2
  CGO_ENABLED=0 gobuild "$dir" "$CONTAINERD_DIR" "no_btrfs no_devmapper no_zfs" \
    "-X $m/version.Version=$CONTAINERD_VERSION" "$m/cmd/containerd" "$m/cmd/containerd-shim-runc-v2" "$m/cmd/ctr"
  containerd_ok || die "built containerd $CONTAINERD_VERSION but it does not run"
fi

if ! runc_ok; then
  [[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a || -n "$(find /usr/lib -name libseccomp.a -print -quit)" ]] ||
    die "runc needs libseccomp.a: apt-get install libseccomp-dev pkg-config"
  dir="$(wrapper runc github.com/opencontainers/runc "$RUNC_VERSION")"
  CGO_ENABLED=1 gobuild "$dir" "$(dirname "$RUNC")" "seccomp urfave_cli_no_docs netgo osusergo" \
    "-X main.version=${RUNC_VERSION#v} -extldflags=-static" github.com/opencontainers/runc
  runc_ok || die "built runc $RUNC_VERSION but it does not run"
fi

if ! cni_ok; then
  dir="$(wrapper cni github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION")"
  p=github.com/containernetworking/plugins/plugins
  CGO_ENABLED=0 gobuild "$dir" "$CNI_BIN_DIR" "" \
    "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
    "$p/main/bridge" "$p/ipam/host-local" "$p/main/loopback" "$p/meta/portmap"
  cni_ok || die "built the CNI plugins $CNI_PLUGINS_VERSION but they do not run"
fi

if ! flannel_ok; then
  m=github.com/flannel-io/flannel
  dir="$(wrapper flannel "$m" "$FLANNEL_VERSION")"
  src="$(cd "$dir" && "$GO" mod download -json "$m@$FLANNEL_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$src/main.go" ]] || die "could not download $m@$FLANNEL_VERSION from $GOPROXY"
  grep -v -E '"github.com/flannel-io/flannel/pkg/backend/(ipsec|tencentvpc|udp|wireguard)"' "$src/main.go" >"$dir/main.go"
  CGO_ENABLED=0 gobuild "$dir" "$(dirname "$FLANNELD")" "" "-X $m/pkg/version.Version=$FLANNEL_VERSION" .
  mv -f "$(dirname "$FLANNELD")/flannel-build" "$FLANNELD" 2>/dev/null || true
  flannel_ok || die "built flanneld $FLANNEL_VERSION but it does not run"
fi

if ! pause_ok; then
  kdir="$(cd "$WORK" && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$kdir/build/pause/linux/pause.c" ]] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@$K8S_VERSION"
  mkdir -p "$(dirname "$PAUSE")"
  gcc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION-tollgate" -o "$PAUSE.tmp.$$" "$kdir/build/pause/linux/pause.c" >&2 ||
    die "gcc -static pause.c failed (is gcc installed?)"
  strip "$PAUSE.tmp.$$" && mv -f "$PAUSE.tmp.$$" "$PAUSE"
  pause_ok || die "built pause but it does not run"
  log "built pause"
fi

report
