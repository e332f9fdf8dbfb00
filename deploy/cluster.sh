#!/usr/bin/env bash
# A local keelfs cluster on 127.0.0.1: one master and three chunkservers, plus a FUSE
# mount of volume "default" when build/bin/keelfs-mount exists.
#
#   deploy/cluster.sh up       start everything, create volume "default", print where things are
#   deploy/cluster.sh down     unmount, stop the processes this script started
#   deploy/cluster.sh status   running/stopped per process, and `keelfs cs ls`
#
# Environment (relative paths are taken from the current directory):
#   KEELFS_HOME            everything lives here (default: <repo>/.keelfs)
#   KEELFS_BIN             binaries (default: <repo>/build/bin)
#   KEELFS_MOUNT           mount point of volume "default" (default: <repo>/mnt)
#   KEELFS_MASTER_PORT     master port for clients (default: 9520)
#   KEELFS_CS_PORT         master port for chunkservers (default: 9521)
#   KEELFS_DATA_PORT_BASE  first chunkserver data port (default: 9522)
#   KEELFS_LOG_LEVEL       master log level (default: info)
#   KEELFS_START_TIMEOUT   seconds to wait for each start-up step (default: 20)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOST=127.0.0.1
MASTER_PORT=${KEELFS_MASTER_PORT:-9520}
CS_PORT=${KEELFS_CS_PORT:-9521}
DATA_PORT_BASE=${KEELFS_DATA_PORT_BASE:-9522}
LOG_LEVEL=${KEELFS_LOG_LEVEL:-info}
START_TIMEOUT=${KEELFS_START_TIMEOUT:-20}
STOP_TIMEOUT=10
NUM_CS=3
VOLUME=default
GOAL=2

KEELFS_HOME=$(realpath -m -- "${KEELFS_HOME:-$ROOT/.keelfs}")
BIN=$(realpath -m -- "${KEELFS_BIN:-$ROOT/build/bin}")
MNT=$(realpath -m -- "${KEELFS_MOUNT:-$ROOT/mnt}")
RUN_DIR=$KEELFS_HOME/run
LOG_DIR=$KEELFS_HOME/logs
SECRET=$KEELFS_HOME/cluster.secret

CS_NAMES=()
for ((i = 1; i <= NUM_CS; i++)); do CS_NAMES+=("cs$i"); done

STARTED=()  # processes started by this invocation, for clean-up on failure

say() { echo "cluster.sh: $*"; }
warn() { echo "cluster.sh: $*" >&2; }
die() {
  warn "$*"
  exit 1
}

usage() {
  echo "usage: $0 up|down|status" >&2
  exit 2
}

binary_of() {
  case "$1" in
    master) echo keelfs-master ;;
    cs*) echo keelfs-chunkserver ;;
    mount) echo keelfs-mount ;;
    *) die "unknown process $1" ;;
  esac
}

pid_file() { echo "$RUN_DIR/$1.pid"; }
ready_file() { echo "$RUN_DIR/$1.ready"; }
log_file() { echo "$LOG_DIR/$1.log"; }

# Alive and not a zombie.
is_alive() {
  local pid=$1 state
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ "$state" != Z ]]
}

# True when PID is alive and runs the binary of process NAME (guards against PID reuse).
is_ours() {
  local name=$1 pid=$2 argv0
  is_alive "$pid" || return 1
  argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || return 1
  [[ "$(basename -- "$argv0")" == "$(binary_of "$name")" ]]
}

# Prints the PID recorded for NAME, if its file exists and holds a number.
recorded_pid() {
  local file pid
  file=$(pid_file "$1")
  [[ -f "$file" ]] || return 1
  pid=$(<"$file")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

# Prints the PID of NAME when its PID file points to a live process of ours.
running_pid() {
  local pid
  pid=$(recorded_pid "$1") || return 1
  is_ours "$1" "$pid" || return 1
  echo "$pid"
}

is_mounted() {
  awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

cli() { "$BIN/keelfs" --master "$HOST:$MASTER_PORT" --cluster-secret-file "$SECRET" "$@"; }

# ---------------------------------------------------------------------------- stop

# Sends SIGTERM to each named process, waits up to STOP_TIMEOUT s, then SIGKILLs.
stop_procs() {
  local name pid
  local -a names=() pids=()
  for name in "$@"; do
    pid=$(recorded_pid "$name") || {
      rm -f "$(pid_file "$name")" "$(ready_file "$name")"
      continue
    }
    if is_ours "$name" "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      names+=("$name")
      pids+=("$pid")
    else
      if is_alive "$pid"; then
        say "$name: stale PID file (pid $pid is not $(binary_of "$name")), removing it"
      else
        say "$name: not running (pid $pid), removing its PID file"
      fi
      rm -f "$(pid_file "$name")" "$(ready_file "$name")"
    fi
  done
  [[ ${#pids[@]} -gt 0 ]] || return 0

  local polls=$((STOP_TIMEOUT * 10)) any i
  while :; do
    any=0
    for pid in "${pids[@]}"; do
      if is_alive "$pid"; then any=1; fi
    done
    ((any == 1 && polls-- > 0)) || break
    sleep 0.1
  done

  for i in "${!pids[@]}"; do
    name=${names[$i]}
    pid=${pids[$i]}
    if is_alive "$pid"; then
      warn "$name (pid $pid) did not stop within ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local n=0
      while is_alive "$pid" && ((n++ < 50)); do sleep 0.1; done
    fi
    say "stopped $name (pid $pid)"
    rm -f "$(pid_file "$name")" "$(ready_file "$name")"
  done
}

unmount() {
  is_mounted "$MNT" || return 0
  if fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null || umount -l "$MNT"; then
    say "unmounted $MNT"
  else
    warn "could not unmount $MNT"
  fi
}

cmd_down() {
  local any=0 name
  for name in mount master "${CS_NAMES[@]}"; do
    if running_pid "$name" >/dev/null; then any=1; fi
  done
  if is_mounted "$MNT"; then any=1; fi
  unmount
  stop_procs mount
  stop_procs "${CS_NAMES[@]}"
  stop_procs master
  if [[ $any -eq 0 ]]; then say "not running"; fi
}

# ---------------------------------------------------------------------------- start

# Stops what this invocation started, newest first.
cleanup_started() {
  [[ ${#STARTED[@]} -gt 0 ]] || return 0
  warn "stopping the processes started by this run"
  if [[ " ${STARTED[*]} " == *" mount "* ]]; then unmount; fi
  local i
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    stop_procs "${STARTED[$i]}" >&2
  done
  STARTED=()
}

# Reports a start failure of NAME with the tail of its log, cleans up, exits 1.
fail() {
  local name=$1 log
  shift
  log=$(log_file "$name")
  warn "$name $*"
  if [[ -f "$log" ]]; then
    warn "--- last 20 lines of $log ---"
    tail -n 20 "$log" >&2
    warn "---"
  fi
  cleanup_started
  exit 1
}

# start_proc NAME ARGS...: starts NAME's binary in its own session, in the background,
# stdout/stderr appended to its log, and records its PID.
start_proc() {
  local name=$1 bin log
  shift
  bin=$BIN/$(binary_of "$name")
  log=$(log_file "$name")
  rm -f "$(ready_file "$name")"
  echo "=== $(date -Is) cluster.sh: $bin $*" >>"$log"
  setsid "$bin" "$@" >>"$log" 2>&1 </dev/null &
  echo "$!" >"$(pid_file "$name")"
  STARTED+=("$name")
}

# Waits until NAME has written its ready file.
wait_ready() {
  local name=$1 pid ready deadline=$((SECONDS + START_TIMEOUT))
  pid=$(recorded_pid "$name")
  ready=$(ready_file "$name")
  until [[ -e "$ready" ]]; do
    is_alive "$pid" || fail "$name" "exited during start-up"
    ((SECONDS < deadline)) || fail "$name" "not ready after ${START_TIMEOUT}s (no $ready)"
    sleep 0.1
  done
}

# Prints how many chunkservers `keelfs --json cs ls` lists (not counting ones marked dead).
count_chunkservers() {
  cli --json cs ls 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print(0); sys.exit()
if isinstance(d, dict):
    for k in ("chunkservers", "servers", "items"):
        if isinstance(d.get(k), list):
            d = d[k]; break
if not isinstance(d, list):
    print(0); sys.exit()
def live(e):
    if not isinstance(e, dict):
        return True
    for k in ("alive", "online", "up", "connected"):
        if isinstance(e.get(k), bool):
            return e[k]
    s = e.get("state", e.get("status"))
    return not (isinstance(s, str) and s.lower() in ("dead", "down", "offline", "lost", "disconnected"))
print(sum(1 for e in d if live(e)))
' 2>/dev/null || echo 0
}

wait_chunkservers() {
  local deadline=$((SECONDS + START_TIMEOUT)) n=0 name pid
  while :; do
    n=$(count_chunkservers)
    ((n >= NUM_CS)) && return 0
    for name in master "${CS_NAMES[@]}"; do
      pid=$(recorded_pid "$name")
      is_alive "$pid" || fail "$name" "exited during start-up"
    done
    ((SECONDS < deadline)) || fail master "sees $n of $NUM_CS chunkservers after ${START_TIMEOUT}s"
    sleep 0.2
  done
}

create_volume() {
  local out secret_file="$KEELFS_HOME/$VOLUME.secret"
  if [[ -e $secret_file ]] && cli volume ls | grep -q "^$VOLUME "; then
    say "volume $VOLUME already exists (secret in $secret_file)"
    return 0
  fi
  rm -f -- "$secret_file"
  if out=$(cli volume create "$VOLUME" --goal "$GOAL" --save-secret "$secret_file" 2>&1); then
    say "created volume $VOLUME (goal $GOAL), its secret in $secret_file (mode 0600)"
  elif grep -qi 'exist' <<<"$out"; then
    fail master "volume $VOLUME exists but its secret is not in $secret_file"
  else
    warn "keelfs volume create $VOLUME failed: $out"
    fail master "did not create volume $VOLUME"
  fi
}

start_mount() {
  [[ -x "$BIN/keelfs-mount" ]] || return 0
  mkdir -p "$MNT"
  is_mounted "$MNT" && fail mount "cannot mount: something is already mounted at $MNT"
  start_proc mount --master "$HOST:$MASTER_PORT" --volume "$VOLUME" --secret-file "$KEELFS_HOME/$VOLUME.secret" "$MNT"
  local pid deadline=$((SECONDS + START_TIMEOUT))
  pid=$(recorded_pid mount)
  until is_mounted "$MNT"; do
    if ! is_alive "$pid"; then
      is_mounted "$MNT" && break  # keelfs-mount daemonized after mounting
      fail mount "exited before $MNT was mounted"
    fi
    ((SECONDS < deadline)) || fail mount "$MNT not mounted after ${START_TIMEOUT}s"
    sleep 0.1
  done
  # A daemonized keelfs-mount leaves a dead PID behind; unmounting stops it.
  is_alive "$pid" || rm -f "$(pid_file mount)"
}

ensure_secret() {
  if [[ ! -s "$SECRET" ]]; then
    (umask 077 && openssl rand -hex 32 >"$SECRET.tmp") || die "openssl rand failed"
    mv -f "$SECRET.tmp" "$SECRET"
    say "generated $SECRET"
  fi
  chmod 600 "$SECRET"
}

check_binaries() {
  local b
  for b in keelfs-master keelfs-chunkserver keelfs; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b not found: build first (deploy/quickstart.sh, or cmake --build build)"
  done
}

refuse_if_running() {
  local pid name
  if pid=$(running_pid master); then
    die "already running (master pid $pid); stop it with: $0 down"
  fi
  for name in "${CS_NAMES[@]}" mount; do
    if pid=$(running_pid "$name"); then
      die "$name is still running (pid $pid) from an earlier start; run: $0 down"
    fi
  done
  if is_mounted "$MNT" && [[ -x "$BIN/keelfs-mount" ]]; then
    die "$MNT is still mounted; run: $0 down"
  fi
}

print_summary() {
  local i
  echo
  echo "keelfs cluster is up"
  printf '  %-7s pid %-7s clients %s, chunkservers %s, data %s\n' master "$(recorded_pid master)" \
    "$HOST:$MASTER_PORT" "$HOST:$CS_PORT" "$KEELFS_HOME/master"
  for ((i = 1; i <= NUM_CS; i++)); do
    printf '  %-7s pid %-7s data %s, dir %s\n' "cs$i" "$(recorded_pid "cs$i")" \
      "$HOST:$((DATA_PORT_BASE + i - 1))" "$KEELFS_HOME/cs$i"
  done
  printf '  %-7s %s\n' volume "$VOLUME (goal $GOAL)"
  if is_mounted "$MNT"; then printf '  %-7s %s\n' mount "$MNT"; fi
  printf '  %-7s %s\n' home "$KEELFS_HOME"
  printf '  %-7s %s\n' logs "$LOG_DIR/"
  printf '  %-7s %s\n' stop "$0 down"
}

cmd_up() {
  check_binaries
  refuse_if_running
  mkdir -p "$KEELFS_HOME/master" "$RUN_DIR" "$LOG_DIR"
  for ((i = 1; i <= NUM_CS; i++)); do mkdir -p "$KEELFS_HOME/cs$i"; done
  ensure_secret
  rm -f "$RUN_DIR"/*.pid "$RUN_DIR"/*.ready

  say "starting master on $HOST:$MASTER_PORT (chunkservers: $HOST:$CS_PORT)"
  start_proc master \
    --listen "$HOST:$MASTER_PORT" --cs-listen "$HOST:$CS_PORT" \
    --data-dir "$KEELFS_HOME/master" --secret-file "$SECRET" \
    --log-file "$(log_file master)" --log-level "$LOG_LEVEL" \
    --ready-file "$(ready_file master)"
  wait_ready master

  local name port
  for ((i = 1; i <= NUM_CS; i++)); do
    name=cs$i
    port=$((DATA_PORT_BASE + i - 1))
    say "starting $name on $HOST:$port"
    start_proc "$name" \
      --master "$HOST:$CS_PORT" --listen "$HOST:$port" \
      --data-dir "$KEELFS_HOME/$name" --secret-file "$SECRET" \
      --log-file "$(log_file "$name")" --region default --zone "z$i" \
      --ready-file "$(ready_file "$name")"
  done
  for name in "${CS_NAMES[@]}"; do wait_ready "$name"; done
  wait_chunkservers
  say "master sees $NUM_CS chunkservers"

  create_volume
  start_mount
  STARTED=()
  print_summary
}

# ---------------------------------------------------------------------------- status

cmd_status() {
  local name pid all=1
  local -a names=(master "${CS_NAMES[@]}")
  if [[ -x "$BIN/keelfs-mount" || -f "$(pid_file mount)" ]]; then names+=(mount); fi
  for name in "${names[@]}"; do
    if pid=$(running_pid "$name"); then
      printf '%-7s running (pid %s)\n' "$name" "$pid"
    elif [[ "$name" == mount ]] && is_mounted "$MNT"; then
      printf '%-7s mounted at %s\n' "$name" "$MNT"
    else
      printf '%-7s stopped\n' "$name"
      all=0
    fi
  done
  if running_pid master >/dev/null; then
    echo
    cli cs ls || warn "keelfs cs ls failed"
  fi
  ((all == 1)) || exit 3
}

main() {
  [[ $# -eq 1 ]] || usage
  case "$1" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) usage ;;
  esac
}

main "$@"
