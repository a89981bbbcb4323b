#!/usr/bin/env bash
# build-image.sh — builds the tollgate agent image WITHOUT Docker or any outside registry: the same image the
# Dockerfile describes (which stays for people with Docker; test/ship/image.test.ts checks that the two agree).
#
#   scripts/build-image.sh [--out PATH] [--tag NAME]
#
# stdout, one KEY=VALUE per line (so `eval "$(scripts/build-image.sh)"` works; progress goes to stderr):
#   IMAGE_TAR=<path>      docker-style image tarball: `crane push "$IMAGE_TAR" REGISTRY/tollgate:TAG`,
#                         `ctr images import "$IMAGE_TAR"`, `docker load -i "$IMAGE_TAR"` all take it
#   IMAGE_REF=<name>      the tag inside the tarball (--tag, default tollgate:<package.json version>)
#   IMAGE_LAYOUT=<dir>    the same image as an OCI image layout (`crane push "$IMAGE_LAYOUT" REF`, skopeo oci:);
#                         pushed from here it keeps its OCI manifest and digest, while a pushed IMAGE_TAR gets
#                         Docker media types (same config and layers, another manifest digest)
#
# What goes in, without a base image: Debian's libc6, libstdc++6 and libgcc-s1 for this machine's release and
# architecture (`apt-get download` + `dpkg-deb -x`; they are all that `ldd node` asks for), the Node binary
# of the project's pinned `node` devDependency (node_modules/node/bin/node, so run `npm ci` first) at
# /nodejs/bin/node as in distroless, and /app exactly as the Dockerfile's stages make it (the
# `npm ci --omit=dev --ignore-scripts` tree, one netlink prebuild, no .d.ts/.map, no netlink sources, the
# compile cache warmed by scripts/warm-compile-cache.js inside the new root). Three layers: the base
# (libraries, node, /etc), /app, and /app/.compile-cache, so an image that changes only the agent ships only
# the last two. crane assembles them through a throwaway `crane registry serve` on 127.0.0.1 (crane mutate
# edits only images in a registry).
#
# /app/src is src/ without the directories .dockerignore leaves out (the lab and the scenario runner: the
# harness is not product), read from that file so the two builds cannot drift.
# The result is cached by a hash of its inputs (package.json, the lockfile, bin/, src/, the warm-up script,
# this script, the Debian package versions, the node and crane versions, the tag, the architecture) under
#   ${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/image/<hash>/{image.tar,oci/,info.json}
# so a second run with the same inputs returns at once; --out copies the tarball to PATH as well. Layer tars
# have sorted entries, mtime 0 and uid/gid 0, so the same inputs give the same base and /app layers (V8's
# compile cache is not reproducible, hence its own small layer).
# Needs: root (for chroot; otherwise `unshare --map-root-user`), apt-get/dpkg-deb, npm, flock, GNU tar.
# Env: TOLLGATE_CACHE, CRANE (crane binary; default from scripts/go-tool.sh crane).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
DEBS=(libc6 libstdc++6 libgcc-s1)
# Must equal the Dockerfile's ENTRYPOINT / CMD / WORKDIR / ENV (the image test compares them).
ENTRYPOINT=(/nodejs/bin/node /app/bin/tollgate.js)
CMD=(agent)
WORKDIR=/app
IMAGE_ENV=(
  NODE_ENV=production
  NODE_COMPILE_CACHE=/app/.compile-cache
  PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
)
# The Dockerfile sets no USER: the distroless base's default, root (uid 0).
IMAGE_USER=0
# The src/ directories .dockerignore excludes after letting src/ in (lines such as `src/lab/`).
mapfile -t LEFT_OUT < <(sed -n 's#^\(src/[A-Za-z0-9_.-]*\)/*$#\1#p' "$REPO/.dockerignore")

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

out="" tag=""
while (($#)); do
  case "$1" in
    --out) out="${2:?--out needs a path}"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    --tag) tag="${2:?--tag needs a name}"; shift 2 ;;
    --tag=*) tag="${1#--tag=}"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (usage: scripts/build-image.sh [--out PATH] [--tag NAME])" ;;
  esac
done

NODE="$REPO/node_modules/node/bin/node"
[[ -x "$NODE" && "$(head -c4 "$NODE" | od -An -c | tr -d ' ')" == '177ELF' ]] ||
  die "no Node binary at $NODE (the pinned \`node\` devDependency): run \`npm ci\` in $REPO first"
# The lockfile's pin, not whatever node_modules happens to hold.
pinned="$("$NODE" -p 'require(process.argv[1]).packages["node_modules/node"].version' "$REPO/package-lock.json")"
actual="$("$NODE" --version)"
[[ "v$pinned" == "$actual" ]] || die "node_modules/node is $actual but package-lock.json pins $pinned: run \`npm ci\`"
version="$("$NODE" -p 'require(process.argv[1]).version' "$REPO/package.json")"
tag="${tag:-tollgate:$version}"
# NAME[:TAG], NAME possibly with a registry host and port (localhost:5000/tollgate:v2).
[[ "$tag" =~ ^[a-z0-9][a-z0-9._-]*(:[0-9]+)?(/[a-z0-9][a-z0-9._-]*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$ ]] ||
  die "--tag '$tag' is not an image name (NAME[:TAG], e.g. tollgate:0.2.0 or localhost:5000/tollgate:dev)"

arch="$(dpkg --print-architecture)"
case "$arch" in
  amd64) keep=linux-x64 ;;
  arm64) keep=linux-arm64 ;;
  *) die "netlink has prebuilds for amd64 and arm64 only, not '$arch'" ;;
esac

CRANE="${CRANE:-$("$REPO/scripts/go-tool.sh" crane)}"
[[ -x "$CRANE" ]] || die "no crane binary ($CRANE)"

# One apt-cache call for all packages (each call takes about a second): "NAME VERSION" lines.
candidates() {
  apt-cache policy "${DEBS[@]}" 2>/dev/null |
    awk '/^[^ ]/ { sub(/:$/, "", $1); name = $1 } /^ *Candidate:/ { print name, $2 }'
}
declare -A debver=()
read_candidates() {
  local name v
  while read -r name v; do [[ "$v" != "(none)" ]] && debver[$name]="$v"; done < <(candidates)
}
read_candidates
if ((${#debver[@]} < ${#DEBS[@]})) && ((EUID == 0)); then
  log "apt knows no version of some of ${DEBS[*]}: apt-get update"
  apt-get update -qq >&2
  read_candidates
fi
for p in "${DEBS[@]}"; do
  [[ -n "${debver[$p]:-}" ]] || die "apt knows no version of $p (run apt-get update)"
done

hash="$(
  {
    printf 'arch=%s tag=%s node=%s crane=%s\n' "$arch" "$tag" "$actual" "$("$CRANE" version)"
    for p in "${DEBS[@]}"; do printf 'deb %s=%s\n' "$p" "${debver[$p]}"; done
    cd "$REPO" &&
      prune=()
      for d in "${LEFT_OUT[@]}"; do prune+=(-path "$d" -prune -o); done
      find package.json package-lock.json .dockerignore bin src scripts/warm-compile-cache.js \
        scripts/build-image.sh "${prune[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
)"
IMAGES="$CACHE_ROOT/image"
final="$IMAGES/$hash"

report() {
  local tar="$final/image.tar"
  if [[ -n "$out" ]]; then
    mkdir -p "$(dirname "$out")"
    cp -f "$tar" "$out.tmp.$$" && mv -f "$out.tmp.$$" "$out"
    tar="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
  fi
  printf 'IMAGE_TAR=%s\nIMAGE_REF=%s\nIMAGE_LAYOUT=%s\n' "$tar" "$tag" "$final/oci"
}
built() { [[ -f "$final/image.tar" && -f "$final/oci/index.json" && -f "$final/info.json" ]]; }

if built; then
  log "up to date: $final (inputs $hash)"
  report
  exit 0
fi

mkdir -p "$IMAGES"
# One builder at a time; a second caller waits, then finds the image and reuses it.
exec 9>"$IMAGES/.lock"
flock 9
if built; then
  report
  exit 0
fi

# Under the lock no other build runs: a .build.* left here is from a killed one.
rm -rf "$IMAGES"/.build.*
start=$SECONDS
stage="$(mktemp -d "$IMAGES/.build.XXXXXX")"
registry_pid=""
cleanup() {
  if [[ -n "$registry_pid" ]]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$stage"
}
trap cleanup EXIT
root="$stage/rootfs"
mkdir -p "$root"

# Runs a command inside the new root with the image's environment, as the Dockerfile's RUN lines do.
in_root() {
  local -a enter
  if ((EUID == 0)); then enter=(chroot "$root"); else enter=(unshare --map-root-user --root="$root"); fi
  env -i "${IMAGE_ENV[@]}" HOME=/root "${enter[@]}" "$@"
}

# --- the base: Debian's runtime libraries, minimal /etc, node ---
debs="$IMAGES/debs"
mkdir -p "$debs" "$root/var/lib/dpkg/status.d"
for p in "${DEBS[@]}"; do
  v="${debver[$p]}"
  f="$(ls "$debs/${p}_${v//:/%3a}_"*.deb 2>/dev/null | head -1 || true)"
  if [[ -z "$f" ]]; then
    log "apt-get download $p=$v"
    # As root, apt would drop to its _apt user, which cannot write to a cache under /root.
    (cd "$debs" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$p=$v" >&2) ||
      die "apt-get download $p=$v failed"
    f="$(ls "$debs/${p}_${v//:/%3a}_"*.deb | head -1)"
  fi
  dpkg-deb -x "$f" "$root"
  # As distroless does: one status file per package, so image scanners see what is inside.
  { dpkg-deb -f "$f"; echo "Status: install ok installed"; } >"$root/var/lib/dpkg/status.d/$p"
done
# Only the copyright files of the packages' documentation are kept (licences), not changelogs or lintian data.
find "$root/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
# (and not the gdb/gcc pretty-printer scripts libstdc++6 brings: no debugger, no python in the image)
rm -rf "$root/usr/share/lintian" "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/gdb" \
  "$root/usr/share/gcc"
find "$root/usr/share" -depth -type d -empty -delete 2>/dev/null || true

mkdir -p "$root/etc" "$root/tmp" "$root/root" "$root/nodejs/bin"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$root/etc/group"
printf '%s\n' 'hosts: files dns' >"$root/etc/nsswitch.conf"
(
  . /etc/os-release
  printf 'PRETTY_NAME="tollgate base (Debian GNU/Linux %s (%s) libraries)"\n' "$VERSION_ID" "$VERSION_CODENAME"
  printf 'ID=debian\nVERSION_ID="%s"\nVERSION_CODENAME=%s\n' "$VERSION_ID" "$VERSION_CODENAME"
) >"$root/etc/os-release"
cp "$NODE" "$root/nodejs/bin/node"
node_license="$(dirname "$(readlink -f "$NODE")")/../LICENSE"
[[ -f "$node_license" ]] && cp "$node_license" "$root/nodejs/LICENSE"

# --- /app: the Dockerfile's deps stage, then its COPY lines ---
app="$root/app"
mkdir -p "$app"
cp "$REPO/package.json" "$REPO/package-lock.json" "$app/"
log "npm ci --omit=dev --ignore-scripts"
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --no-update-notifier --prefer-offline \
  --loglevel=error >&2) || die "npm ci --omit=dev failed"
[[ -f "$app/node_modules/netlink/prebuilds/$keep/node.napi.node" ]] || die "netlink ships no $keep prebuild"
find "$app/node_modules/netlink/prebuilds" -mindepth 1 -maxdepth 1 ! -name "$keep" -exec rm -rf {} +
rm -rf "$app/node_modules/netlink/src" "$app/node_modules/netlink/binding.gyp"
find "$app/node_modules" -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete
rm -f "$app/package-lock.json" # the runtime stage copies node_modules and package.json only
cp -r "$REPO/bin" "$REPO/src" "$app/"
for d in "${LEFT_OUT[@]}"; do rm -rf "${app:?}/$d"; done
mkdir -p "$app/scripts"
cp "$REPO/scripts/warm-compile-cache.js" "$app/scripts/"

log "warming the compile cache inside the new root"
in_root /nodejs/bin/node /app/scripts/warm-compile-cache.js /app/.compile-cache >&2 ||
  die "the compile-cache warm-up failed inside the image's root"
in_root /nodejs/bin/node /app/bin/tollgate.js agent --help >/dev/null ||
  die "smoke test failed: \`tollgate agent --help\` does not run inside the image's root"

# --- layers: sorted, mtime 0, root-owned, no atime/ctime, so the same inputs give the same bytes ---
layer() { # layer OUT PATH...
  local out="$1"
  shift
  tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$out" "$@"
}
mapfile -t base_paths < <(cd "$root" && ls -A | grep -vx app)
layer "$stage/base.tar" "${base_paths[@]}"
layer "$stage/app.tar" --exclude=app/.compile-cache app
# V8's code cache is not byte-for-byte reproducible: a layer of its own keeps the /app layer reproducible.
layer "$stage/cache.tar" app/.compile-cache

# --- assembly in a throwaway in-memory registry ---
"$CRANE" registry serve --address 127.0.0.1:0 2>"$stage/registry.log" &
registry_pid=$!
port=""
for _ in $(seq 1 100); do
  port="$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$stage/registry.log")"
  [[ -n "$port" ]] && break
  kill -0 "$registry_pid" 2>/dev/null || die "crane registry serve exited: $(cat "$stage/registry.log")"
  sleep 0.1
done
[[ -n "$port" ]] || die "crane registry serve did not report its port: $(cat "$stage/registry.log")"
reg="127.0.0.1:$port/tollgate"

log "crane append + mutate"
"$CRANE" append --oci-empty-base -f "$stage/base.tar" -f "$stage/app.tar" -f "$stage/cache.tar" \
  -t "$reg:layers" >/dev/null 2>"$stage/crane.log" ||
  die "crane append failed: $(cat "$stage/crane.log")"
env_flags=()
for e in "${IMAGE_ENV[@]}"; do env_flags+=(-e "$e"); done
entrypoint="$(IFS=,; echo "${ENTRYPOINT[*]}")"
cmd="$(IFS=,; echo "${CMD[*]}")"
"$CRANE" mutate "$reg:layers" --set-platform "linux/$arch" --entrypoint "$entrypoint" --cmd "$cmd" \
  "${env_flags[@]}" -w "$WORKDIR" -u "$IMAGE_USER" -t "$reg:image" >/dev/null 2>"$stage/crane.log" ||
  die "crane mutate failed: $(cat "$stage/crane.log")"
"$CRANE" pull --format=oci "$reg:image" "$stage/oci" 2>"$stage/crane.log" ||
  die "crane pull --format=oci failed: $(cat "$stage/crane.log")"
# A no-op mutate whose only output is the tarball, named by the tag (not by the throwaway registry's address).
"$CRANE" mutate "$reg:image" -t "$tag" -o "$stage/image.tar" >/dev/null 2>"$stage/crane.log" ||
  die "crane mutate -o failed: $(cat "$stage/crane.log")"
digest="$("$CRANE" digest "$reg:image")"

compressed="$("$CRANE" manifest "$reg:image" | "$NODE" -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const m = JSON.parse(s);
    console.log(m.layers.reduce((n, l) => n + l.size, 0) + m.config.size);
  });')"
unpacked="$(du -sb "$root" | cut -f1)"
seconds=$((SECONDS - start))
printf '{"tag":"%s","digest":"%s","inputs":"%s","compressedBytes":%s,"unpackedBytes":%s,"buildSeconds":%s}\n' \
  "$tag" "$digest" "$hash" "$compressed" "$unpacked" "$seconds" >"$stage/info.json"

rm -rf "$root" "$stage/base.tar" "$stage/app.tar" "$stage/cache.tar" "$stage"/*.log
rm -rf "$final"
chmod 755 "$stage"
mv "$stage" "$final"
# Keep the three newest builds; older ones only fill the disk.
ls -1dt "$IMAGES"/*/ 2>/dev/null | grep -v '/debs/$' | tail -n +4 | xargs -r rm -rf
log "built $tag ($digest) in ${seconds}s: $((compressed / 1000000)) MB compressed, $((unpacked / 1000000)) MB unpacked -> $final"
report
