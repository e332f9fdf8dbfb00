#!/usr/bin/env bash
# Installs every Debian 12 package keelfs needs to build, test and run.
# This is the one list; tests/run.sh and deploy/quickstart.sh both call this script.
# Skips apt entirely when everything is already installed, so repeated runs are fast.
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache pkg-config
  libboost-dev protobuf-compiler libprotobuf-dev librocksdb-dev
  libfuse3-dev fuse3 catch2 libisal-dev
  libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev
  libssl-dev nlohmann-json3-dev
  python3 procps psmisc e2fsprogs util-linux openssl
  git tar rsync sqlite3 attr iproute2
  clang libclang-rt-14-dev
)

log() { echo "install-deps: $*" >&2; }

# Prints the packages of PACKAGES that are not fully installed.
missing_packages() {
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != ii* ]]; then
      echo "$pkg"
    fi
  done
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    log "need root (or passwordless sudo) to install packages"
    return 1
  fi
}

apt_get() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get \
    -o DPkg::Lock::Timeout=300 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "$@" </dev/null
}

main() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    log "dpkg-query not found: this script expects Debian 12 (bookworm)"
    exit 1
  fi

  local -a missing
  mapfile -t missing < <(missing_packages)
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "all ${#PACKAGES[@]} packages already installed"
    return 0
  fi

  log "installing: ${missing[*]}"
  local attempt
  for attempt in 1 2 3; do
    if apt_get update; then
      break
    fi
    if [[ $attempt -eq 3 ]]; then
      log "apt-get update failed"
      exit 1
    fi
    log "apt-get update failed (attempt $attempt), retrying"
    sleep 5
  done
  apt_get install -y "${missing[@]}"

  mapfile -t missing < <(missing_packages)
  if [[ ${#missing[@]} -ne 0 ]]; then
    log "still missing after install: ${missing[*]}"
    exit 1
  fi
  log "done"
}

main "$@"
