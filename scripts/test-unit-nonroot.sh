#!/bin/sh
# Proves the unit tier needs no root and no network: copies the committed tree (HEAD, as a fresh clone
# has it) to a temporary directory owned by nobody, reuses this checkout's node_modules read-only, and runs
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
ln -s "$repo/node_modules" "$work/node_modules"
# The team's scenario corpus sits beside the clone (test/_corpus.ts); keep that layout when it is there.
[ -d "$repo/../shared" ] && ln -s "$(cd "$repo/../shared" && pwd)" "$top/shared"
mkdir "$work/.home"
chown -R nobody:nogroup "$work"
chmod 755 "$top" "$work"
echo "test-unit-nonroot: $(git -C "$repo" rev-parse --short HEAD) in $work; load: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
status=0
cd "$work"
# Only loopback (up) in the new network namespace: tests may serve fakes on 127.0.0.1, nothing else.
unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
  setpriv --reuid=nobody --regid=nogroup --clear-groups \
  env -i PATH="$PATH" HOME="$work/.home" npm_config_cache="$work/.home/.npm" CI=1 \
  npm run --silent test:unit -- "$@" || status=$?
echo "test-unit-nonroot: exit $status after $(( $(date +%s) - start )) s; load: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
