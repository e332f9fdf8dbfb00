#!/usr/bin/env bash
# The master at scale: its memory per file and per chunk, how long a restart takes to
# answer, and what a client's stat feels while a chunkserver holding a third of the chunks
# is killed and healed, while it comes back and reports, and during HEALTH and FSCK.
# Figures go to docs/performance.md ("The master at scale").
#
#   bench/master_scale.sh [FILES] [SIZE] [THREADS]    (defaults: 1000000 4096 8)
#
# SIZE 0 makes empty files (no chunks: the namespace alone). Runs its own local cluster
# (deploy/cluster.sh) under KEELFS_HOME (default /tmp/keelfs-scale, removed first) with
# the usual ports; stop any other local cluster first. Needs a build in build/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FILES=${1:-1000000}
SIZE=${2:-4096}
THREADS=${3:-8}
export KEELFS_HOME=${KEELFS_HOME:-/tmp/keelfs-scale}
export KEELFS_MOUNT=$KEELFS_HOME/mnt
BIN=$ROOT/build/bin
CLUSTER=$ROOT/deploy/cluster.sh

cli() { "$BIN/keelfs" --master 127.0.0.1:9520 --cluster-secret-file "$KEELFS_HOME/cluster.secret" "$@"; }
bench() { "$BIN/keelfs-bench" --volume default "$@"; }
pid_of() { cat "$KEELFS_HOME/run/$1.pid"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$(pid_of master)/status"; }
stamp() { date +%s.%N | cut -c1-14; }
# CPU seconds (user + system) the master has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$(pid_of master)/stat"; }
say() { echo "[$(date +%T)] $*"; }
health() { cli --json health | python3 -c "import json,sys; h=json.load(sys.stdin); print($1)"; }
wait_for() {  # wait_for SECONDS PYTHON-EXPR-ON-HEALTH
  local deadline=$((SECONDS + $1))
  until [[ $(health "$2") == True ]]; do
    ((SECONDS < deadline)) || { say "gave up waiting for: $2"; return 1; }
    sleep 1  # HEALTH reads every chunk record: not too often
  done
}

"$CLUSTER" down >/dev/null 2>&1 || true
rm -rf "$KEELFS_HOME"
"$CLUSTER" up >/dev/null
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT
say "cluster up; master RSS $(rss_kib) KiB"

bench small --files "$FILES" --size "$SIZE" --threads "$THREADS"
say "after $FILES files of $SIZE bytes: master RSS $(rss_kib) KiB"
cli health | head -5

# Restart: how long until the master answers its first request.
master_cmd=()
while IFS= read -r -d '' arg; do master_cmd+=("$arg"); done <"/proc/$(pid_of master)/cmdline"
kill -TERM "$(pid_of master)"
while kill -0 "$(pid_of master)" 2>/dev/null; do sleep 0.05; done
t0=$(stamp)
setsid "${master_cmd[@]}" >>"$KEELFS_HOME/logs/master.log" 2>&1 </dev/null &
echo $! >"$KEELFS_HOME/run/master.pid"
until cli volume ls >/dev/null 2>&1; do sleep 0.02; done
t1=$(stamp)
say "master restarted: first answer $(awk "BEGIN {print $t1 - $t0}") s after start; RSS $(rss_kib) KiB"
wait_for 60 "h['servers_alive'] == 3 and h['under_goal'] == 0 and h['missing'] == 0"
say "after restart and reports: master RSS $(rss_kib) KiB"
cli health | grep "master memory"

# A client stats in a loop while the cluster is shaken.
log=$KEELFS_HOME/statloop.log
# The binary itself in the background (not the shell function), so that $! is its pid.
"$BIN/keelfs-bench" --volume default statloop --seconds 100000 >"$log" &
loop=$!
sleep 3
cs_cmd=()
while IFS= read -r -d '' arg; do cs_cmd+=("$arg"); done <"/proc/$(pid_of cs1)/cmdline"
say "phase kill: kill -9 of cs1"
c0=$(cpu_s) t0=$(stamp)
kill -9 "$(pid_of cs1)"
wait_for 600 "h['servers_dead'] == 1 and h['under_goal'] == 0 and h['missing'] == 0 and h['healing'] == 0"
say "phase kill: every chunk back at goal after $(awk "BEGIN {print $(stamp) - $t0}") s; master CPU $(awk "BEGIN {print $(cpu_s) - $c0}") s"
say "phase return: cs1 restarted"
setsid "${cs_cmd[@]}" >>"$KEELFS_HOME/logs/cs1.log" 2>&1 </dev/null &
echo $! >"$KEELFS_HOME/run/cs1.pid"
wait_for 600 "h['servers_dead'] == 0 and h['over_goal'] == 0 and h['under_goal'] == 0"
say "phase return: reported, extra copies trimmed"
say "phase health"
cli health >/dev/null
say "phase fsck"
cli fsck default | tail -2
say "phase end; master RSS $(rss_kib) KiB"
cli health | grep "master memory"
sleep 2
kill "$loop"
wait "$loop" 2>/dev/null || true
cat "$log"
python3 - "$log" <<'EOF'
import re, sys
rows = [l for l in open(sys.argv[1]) if re.match(r"statloop +\d+ s:", l)]
p99 = [int(re.search(r"p99 +(\d+)", l).group(1)) for l in rows]
mx = [int(re.search(r"max +(\d+)", l).group(1)) for l in rows]
if p99:
    print(f"statloop over {len(rows)} s: worst per-second p99 {max(p99)} us, worst single stat {max(mx)} us")
EOF
