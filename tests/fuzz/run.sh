#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each (default 10), starting from the seeds in
# tests/fuzz/corpus/TARGET (the tree is never written: the run's corpus is a copy).
# Exit status 1 when a target crashed; its input is kept under $KEELFS_FUZZ_OUT (default
# /tmp/keelfs-fuzz-out) and printed as a reproduce command. Prints each target's executions.
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:?usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]}
SECONDS_EACH=${2:-10}
OUT=${KEELFS_FUZZ_OUT:-/tmp/keelfs-fuzz-out}
# RocksDB and protobuf are not instrumented: their containers would look overflowed.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_container_overflow=0:detect_leaks=0}


mkdir -p "$OUT"
failed=0
for target in frame_fuzz namespace_ops_fuzz namespace_requests_fuzz chunk_store_fuzz; do
  corpus=$(mktemp -d "/tmp/keelfs-fuzz-corpus-$target.XXXXXX")
  seeds="$ROOT/tests/fuzz/corpus/$target"
  [[ -d "$seeds" ]] && cp "$seeds"/* "$corpus"/ 2>/dev/null || true
  log="$OUT/$target.log"
  if "$BUILD/bin/$target" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$OUT/$target-" "$corpus" >"$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' || true)
    [[ -n "$execs" ]] || execs=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    echo "fuzz $target: ${SECONDS_EACH}s, ${execs:-?} executions, corpus $(ls "$corpus" | wc -l) inputs, no crash"
  else
    failed=1
    echo "fuzz $target: CRASHED; log $log" >&2
    tail -n 40 "$log" >&2
    for a in "$OUT/$target"-*; do [[ -e "$a" ]] && echo "reproduce: $BUILD/bin/$target $a" >&2; done
  fi
  rm -rf "$corpus" /tmp/keelfs-fuzz-store-* /tmp/keelfs-fuzz-cs-*
done
exit $failed
