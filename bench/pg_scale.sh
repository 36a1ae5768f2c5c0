#!/usr/bin/env bash
# Issue 17's benchmark (docs/performance.md, "Several servers on one PostgreSQL"): 1, 2 and 4
# `redrive serve --store postgres://…` processes on one PostgreSQL on this machine, driven by
# redrive-bench through every server in turn, with the CPU seconds the database and the servers
# spent during each run. Release binaries (cargo build --release -p redrive -p redrive-bench).
#
#   source tests/services/start.sh      # a PostgreSQL on loopback (REDRIVE_TEST_POSTGRES_URL)
#   bench/pg_scale.sh [SERVERS...]      # default: 1 2 4
#
# Environment: PATTERN (interleaved), BATCH (10), CONCURRENCY (16), DURATION (8 s), SIZE (1024),
# PG_USER (the user PostgreSQL runs as, for its CPU time: redrive-pg when started as root).
# Each run gets a fresh database. CPU is read from `ps -o times` of the PostgreSQL processes
# before and after the run (backends that exit during the run are not counted; the servers
# keep their pools open, so that is little).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}/release
BIN=${BIN:-$T/redrive}
BENCH=${BENCH:-$T/redrive-bench}
URL=${REDRIVE_TEST_POSTGRES_URL:?source tests/services/start.sh first}
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
PG_USER=${PG_USER:-$([ "$(id -u)" = 0 ] && echo redrive-pg || id -un)}
PATTERN=${PATTERN:-interleaved}
BATCH=${BATCH:-10}
CONCURRENCY=${CONCURRENCY:-16}
DURATION=${DURATION:-8}
SIZE=${SIZE:-1024}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TICK=$(getconf CLK_TCK)
cpu_of_pids() {  # CPU seconds (user + system) the processes have used so far
  local p
  for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null || true; done |
    awk -v t="$TICK" '{ sub(/^.*\) /, ""); s += $12 + $13 } END { printf "%.2f", s / t }'
}
cpu_of_user() { cpu_of_pids $(pgrep -u "$1" || true); }
wait_ready() {
  for _ in $(seq 3000); do
    curl -s -o /dev/null -X POST -H 'Content-Type: application/x-amz-json-1.0' \
      -H 'X-Amz-Target: AmazonSQS.ListQueues' -d '{}' "http://127.0.0.1:$1/" && return 0
    sleep 0.01
  done
  echo "server on port $1 did not start" >&2
  return 1
}

echo "| servers | msg/s | send p50/p99 ms | receive p50/p99 ms | PostgreSQL CPU s | servers CPU s | wall s | load before |"
echo "|---|---|---|---|---|---|---|---|"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 4)
for n in "${counts[@]}"; do
  db="bench_$(date +%s)_$n"
  "$PG_BIN/psql" -q "$URL" -c "CREATE DATABASE $db" >/dev/null
  db_url="${URL%/*}/$db"
  pids=() endpoints=()
  for ((i = 0; i < n; i++)); do
    port=$(free_port)
    "$BIN" serve --port "$port" --store "$db_url" >/dev/null 2>&1 &
    pids+=($!)
    wait_ready "$port"
    endpoints+=(--endpoint "http://127.0.0.1:$port")
  done
  load=$(cut -d' ' -f1 /proc/loadavg)
  pg0=$(cpu_of_user "$PG_USER")
  sv0=$(cpu_of_pids "${pids[@]}")
  t0=$(date +%s%N)
  line=$("$BENCH" "${endpoints[@]}" --pattern "$PATTERN" --batch "$BATCH" \
    --concurrency "$CONCURRENCY" --size "$SIZE" --messages 1000000 --duration "$DURATION" \
    --summary | grep '^RESULT')
  t1=$(date +%s%N)
  pg1=$(cpu_of_user "$PG_USER")
  sv1=$(cpu_of_pids "${pids[@]}")
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  "$PG_BIN/psql" -q "$URL" -c "DROP DATABASE $db" >/dev/null || true
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  printf '| %s | %s | %s / %s | %s / %s | %s | %s | %s | %s |\n' "$n" "$(field msgs_per_s)" \
    "$(field send_p50_ms)" "$(field send_p99_ms)" "$(field receive_p50_ms)" \
    "$(field receive_p99_ms)" "$(awk -v a="$pg0" -v b="$pg1" 'BEGIN{printf "%.1f", b-a}')" \
    "$(awk -v a="$sv0" -v b="$sv1" 'BEGIN{printf "%.1f", b-a}')" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1e9}')" "$load"
done
