#!/usr/bin/env bash
# The README's first command as a new user runs it: deploy/quickstart.sh installs, builds,
# starts a local cluster and mounts volume "default". Afterwards the volume must be a live
# FUSE mount that takes a file and gives it back, and `keelfs` must see the file. Runs on
# free ports and its own KEELFS_HOME; stops everything it started, even when it fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${KEELFS_BUILD_DIR:-$ROOT/build}/bin

free_ports() {  # free_ports N: N consecutive free TCP ports on 127.0.0.1, the first printed
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randint(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
PY
}

KEELFS_HOME=$(mktemp -d /tmp/keelfs-quickstart.XXXXXX)
export KEELFS_HOME
export KEELFS_MOUNT=$KEELFS_HOME/mnt
base=$(free_ports 5)
export KEELFS_MASTER_PORT=$base KEELFS_CS_PORT=$((base + 1)) KEELFS_DATA_PORT_BASE=$((base + 2))
export KEELFS_BIN=$BIN

cleanup() {
  local rc=$?
  bash "$ROOT/deploy/cluster.sh" down >/dev/null 2>&1 || true
  if grep -qs " $KEELFS_MOUNT " /proc/mounts; then fusermount3 -uz "$KEELFS_MOUNT" 2>/dev/null || umount -l "$KEELFS_MOUNT" || true; fi
  if [[ $rc -ne 0 ]]; then
    echo "quickstart test failed; logs:" >&2
    tail -n 20 "$KEELFS_HOME"/logs/* >&2 2>/dev/null || true
  fi
  rm -rf "$KEELFS_HOME"
  exit $rc
}
trap cleanup EXIT

fail() { echo "quickstart test: $*" >&2; exit 1; }

KEELFS_BUILD_DIR=${KEELFS_BUILD_DIR:-$ROOT/build} bash "$ROOT/deploy/quickstart.sh" </dev/null >"$KEELFS_HOME/quickstart.out" 2>&1 ||
  { cat "$KEELFS_HOME/quickstart.out" >&2; fail "deploy/quickstart.sh failed"; }

grep -qs " $KEELFS_MOUNT fuse" /proc/mounts || { cat "$KEELFS_HOME/quickstart.out" >&2; fail "nothing is mounted at $KEELFS_MOUNT"; }
head -c 300000 /dev/urandom >"$KEELFS_HOME/in"
cp "$KEELFS_HOME/in" "$KEELFS_MOUNT/file"
mkdir "$KEELFS_MOUNT/dir"
cmp "$KEELFS_HOME/in" "$KEELFS_MOUNT/file" || fail "the file read back differs"
out=$("$BIN/keelfs" --master "127.0.0.1:$KEELFS_MASTER_PORT" stat default:/file) || fail "keelfs stat failed"
grep -q "300000" <<<"$out" || fail "keelfs stat does not show the file's size: $out"
grep -q "What now" "$KEELFS_HOME/quickstart.out" || fail "the quickstart printed no next steps"
echo "quickstart: volume mounted at $KEELFS_MOUNT, a file written, read back and seen by keelfs"
