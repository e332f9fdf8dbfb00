#!/usr/bin/env bash
# Installs packages, builds the keelfs binaries and starts a local cluster on 127.0.0.1:
# one master, three chunkservers, volume "default" (goal 2). Tests: ./tests/run.sh.
#
# Uses the same build directory as tests/run.sh (build/, or KEELFS_BUILD_DIR) and
# everything cluster.sh reads (KEELFS_HOME, KEELFS_MOUNT, KEELFS_*_PORT).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${KEELFS_BUILD_DIR:-build}
MASTER=127.0.0.1:${KEELFS_MASTER_PORT:-9520}

step() { echo "==> $*" >&2; }

build() {
  export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  export CCACHE_BASEDIR="$ROOT"
  export CCACHE_NOHASHDIR=1

  step "configuring ($BUILD_DIR)"
  cmake -S . -B "$BUILD_DIR"

  local -a targets=(keelfs-master keelfs-chunkserver keelfs)
  # The list is read whole before it is searched: `cmake ... | grep -q` under pipefail
  # fails when grep exits at the first match and cmake dies of SIGPIPE.
  local target_list
  target_list=$(cmake --build "$BUILD_DIR" --target help)
  if grep -Eq '(^|[[:space:]])keelfs-mount(:|[[:space:]]|$)' <<<"$target_list"; then
    targets+=(keelfs-mount)
  fi
  step "building ${targets[*]} with $(nproc) jobs"
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${targets[@]}"
}

what_now() {
  local kf="$BUILD_DIR/bin/keelfs --master $MASTER"
  echo
  echo "What now (from $ROOT):"
  printf '  %-72s # %s\n' \
    "export KEELFS_HOME=$KEELFS_HOME" "so keelfs finds volume secrets there" \
    "$kf cs ls" "chunkservers the master sees" \
    "$kf volume ls" "volumes" \
    "$kf put README.md default:/README.md" "upload a file" \
    "$kf ls default:/" "list a directory" \
    "$kf stat default:/README.md" "size, chunks, replicas" \
    "$kf get default:/README.md /tmp/x" "download it" \
    "$kf --json cs ls" "any command, as JSON"
  if [[ -x "$KEELFS_BIN/keelfs-mount" ]]; then
    printf '  %-72s # %s\n' "ls $KEELFS_MOUNT" "volume \"default\", mounted over FUSE"
  fi
  printf '  %-72s # %s\n' \
    "deploy/cluster.sh status" "what is running" \
    "deploy/cluster.sh down" "stop everything; data stays, 'up' starts it again" \
    "ls $KEELFS_HOME/logs/" "logs" \
    "./tests/run.sh" "build and run every test"
}

main() {
  # cluster.sh runs from $ROOT: make the paths the user gave absolute first.
  KEELFS_HOME=$(realpath -m -- "${KEELFS_HOME:-$ROOT/.keelfs}")
  KEELFS_MOUNT=$(realpath -m -- "${KEELFS_MOUNT:-$ROOT/mnt}")
  if [[ -n "${KEELFS_BIN:-}" ]]; then KEELFS_BIN=$(realpath -m -- "$KEELFS_BIN"); fi
  export KEELFS_HOME KEELFS_MOUNT
  cd "$ROOT"
  step "installing packages"
  bash "$ROOT/deploy/install-deps.sh"

  build

  KEELFS_BIN=${KEELFS_BIN:-$(realpath -m -- "$BUILD_DIR/bin")}
  export KEELFS_BIN
  local rc=0
  bash "$ROOT/deploy/cluster.sh" status >/dev/null 2>&1 || rc=$?
  if [[ $rc -eq 0 ]]; then
    step "cluster already running; to restart it on the new build: deploy/cluster.sh down && deploy/cluster.sh up"
  else
    step "starting the cluster"
    bash "$ROOT/deploy/cluster.sh" up
  fi
  what_now
}

main "$@"
