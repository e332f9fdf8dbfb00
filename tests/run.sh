#!/usr/bin/env bash
# Installs packages, configures, builds and runs every test through CTest.
# Works on a fresh Debian 12 machine as root, non-interactively (CI=true, no stdin).
# Extra arguments are passed to ctest, e.g. `./tests/run.sh -R crc32c`.
#
# Environment:
#   KEELFS_BUILD_DIR       build directory (default: build)
#   KEELFS_TEST_TIMEOUT    per-test timeout in seconds (default: 900)
#   KEELFS_ALLOW_NO_TESTS  set to 1 to accept a run in which CTest finds no test
#   KEELFS_RELEASE_CHECK   set to 1 to also build Release with warnings as errors (always
#                          done when CI=true)
#   KEELFS_FUZZ_SECONDS    how long each fuzz target runs (default: 10)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${KEELFS_BUILD_DIR:-build}
TEST_TIMEOUT=${KEELFS_TEST_TIMEOUT:-900}

step() { echo "==> $*" >&2; }

setup_ccache() {
  export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  # CI builds a fresh clone in another folder: rewrite absolute paths under the
  # source tree and ignore the working directory, so the cache still hits.
  export CCACHE_BASEDIR="$ROOT"
  export CCACHE_NOHASHDIR=1
}

main() {
  cd "$ROOT"

  step "installing packages"
  bash "$ROOT/deploy/install-deps.sh"

  setup_ccache

  step "configuring ($BUILD_DIR)"
  cmake -S . -B "$BUILD_DIR" -DKEELFS_WERROR=ON

  step "building with $(nproc) jobs"
  cmake --build "$BUILD_DIR" -j"$(nproc)"

  local no_tests=error
  if [[ "${KEELFS_ALLOW_NO_TESTS:-0}" == 1 ]]; then
    no_tests=ignore
  fi

  step "running tests"
  ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout "$TEST_TIMEOUT" --no-tests="$no_tests" "$@"

  # Fuzzing (docs/security.md, "Fuzzing"): a build of its own with clang, then a few
  # seconds per target.
  step "fuzzing ($BUILD_DIR-fuzz, ${KEELFS_FUZZ_SECONDS:-10} s per target)"
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR-fuzz" -DKEELFS_FUZZ=ON -DKEELFS_WERROR=ON
  cmake --build "$BUILD_DIR-fuzz" -j"$(nproc)" --target fuzz_targets
  bash "$ROOT/tests/fuzz/run.sh" "$BUILD_DIR-fuzz" "${KEELFS_FUZZ_SECONDS:-10}"

  # A packager's first command is a Release build: in CI it must compile, warnings as errors
  # (GCC warns differently at -O3).
  if [[ "${CI:-}" == true || "${KEELFS_RELEASE_CHECK:-0}" == 1 ]]; then
    step "building Release ($BUILD_DIR-release)"
    cmake -S . -B "$BUILD_DIR-release" -DCMAKE_BUILD_TYPE=Release -DKEELFS_WERROR=ON
    cmake --build "$BUILD_DIR-release" -j"$(nproc)"
  fi
}

main "$@"
