#!/bin/sh
# Proves the unit tier needs no root and no network: copies the committed tree (HEAD, as a fresh clone
# has it) to a temporary directory owned by nobody, with this checkout's node_modules (hard links, read-only
# to nobody) and ../shared copied in, since nobody may not traverse the directories above the checkout (a
# mktemp -d parent is 0700: nobody then found no pinned node and ran the system's), and runs
# `npm run test:unit` as nobody in an empty network namespace. Needs root to set that up (CI, or a dev box
# with sudo); removes the copy afterwards. Prints the time and the load average.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "test-unit-nonroot: run as root (it drops to nobody itself)" >&2; exit 2; }
[ -d "$repo/node_modules" ] || { echo "test-unit-nonroot: run npm ci first" >&2; exit 2; }
top=$(mktemp -d /tmp/tollgate-unit.XXXXXX)
trap 'rm -rf "$top"' EXIT
trap 'exit 130' INT TERM
work=$top/tollgate
mkdir "$work"
git -C "$repo" archive HEAD | tar -x -C "$work"
# The team's scenario corpus sits beside the clone (test/_corpus.ts); keep that layout when it is there.
[ -d "$repo/../shared" ] && cp -r "$repo/../shared" "$top/shared"
mkdir "$work/.home"
chown -R nobody:nogroup "$work"
chmod 755 "$top" "$work"
# tap builds its Test class into node_modules on its first run; nobody may not write there, so build it
# here first (a fresh clone's first test run is this one: CI runs it before `npm test`).
(cd "$repo" && node_modules/.bin/tap build >/dev/null)
# After the chown: hard links share their inode, so a chown now would change this checkout's files too.
cp -al "$repo/node_modules" "$work/node_modules" 2>/dev/null || {
  rm -rf "$work/node_modules"
  cp -a "$repo/node_modules" "$work/node_modules"
}
pinned=$("$work/node_modules/.bin/node" -p process.version)
seen=$(setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH="$work/node_modules/.bin:$PATH" node -p process.version 2>&1) || true
[ "$seen" = "$pinned" ] || { echo "test-unit-nonroot: nobody runs node '$seen', not the pinned $pinned" >&2; exit 1; }
echo "test-unit-nonroot: $(git -C "$repo" rev-parse --short HEAD) in $work; load: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
status=0
cd "$work"
# Only loopback (up) in the new network namespace: tests may serve fakes on 127.0.0.1, nothing else.
unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
  setpriv --reuid=nobody --regid=nogroup --clear-groups \
  env -i PATH="$work/node_modules/.bin:$PATH" HOME="$work/.home" npm_config_cache="$work/.home/.npm" CI=1 \
  npm run --silent test:unit -- "$@" || status=$?
echo "test-unit-nonroot: exit $status after $(( $(date +%s) - start )) s; load: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
