#!/usr/bin/env bash
# Issue 16's measurements (docs/performance.md, "Issue 16: bodies in the store"), with the
# release binaries (build them first: cargo build --release -p redrive -p redrive-bench).
#
#   bench/issue16.sh throughput [ROUNDS]   # strict vs in-memory, interleaved batch 10, c=16,
#                                          # 8 s per run, alternating, fresh data dir per run
#   bench/issue16.sh deep MILLIONS DIR     # fill MILLIONS x 1 KiB into a strict server in DIR,
#                                          # RSS, restart time and RSS, receive latency at that
#                                          # depth vs an empty queue of the same server
#   BIN_A=... BIN_B=... bench/issue16.sh ab [ROUNDS]
#                                          # two server builds, strict, interleaved batch 10,
#                                          # c=16, alternating: msg/s and the server's CPU
#                                          # (user+sys ms per 1,000 messages, from /proc)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}/release
BIN=${BIN:-$T/redrive}
BENCH=${BENCH:-$T/redrive-bench}
PORT=${PORT:-9431}
EP="http://127.0.0.1:$PORT"

wait_ready() {
  for _ in $(seq 6000); do
    curl -s -o /dev/null -X POST -H 'Content-Type: application/x-amz-json-1.0' \
      -H 'X-Amz-Target: AmazonSQS.ListQueues' -d '{}' "$EP/" && return 0
    sleep 0.01
  done
  echo "server did not start" >&2; return 1
}
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
hwm_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
# user+sys CPU of a process in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
bench() { "$BENCH" --endpoint "$EP" --summary "$@" | grep '^RESULT'; }

case ${1:-} in
throughput)
  rounds=${2:-3}
  for r in $(seq "$rounds"); do
    for mode in strict memory; do
      data=$(mktemp -d /tmp/issue16-tp.XXXXXX)
      if [ "$mode" = strict ]; then
        "$BIN" serve --port "$PORT" --data-dir "$data" >/dev/null 2>&1 &
      else
        "$BIN" serve --port "$PORT" --in-memory >/dev/null 2>&1 &
      fi
      pid=$!
      wait_ready
      echo "round $r $mode $(bench --pattern interleaved --batch 10 --concurrency 16 \
        --messages 1000000 --duration 8 --queue tp)"
      kill "$pid"; wait "$pid" 2>/dev/null || true
      rm -rf "$data"
    done
  done
  ;;
deep)
  millions=$2; data=$3
  mkdir -p "$data"
  "$BIN" serve --port "$PORT" --data-dir "$data" >/dev/null 2>&1 &
  pid=$!
  wait_ready
  echo "empty server: RSS $(rss_mb $pid) MB"
  start=$(date +%s.%N)
  for i in $(seq "$millions"); do
    bench --pattern send --batch 10 --concurrency 16 --size 1024 --messages 1000000 \
      --queue deep --no-purge >/dev/null
    echo "filled ${i}M: RSS $(rss_mb $pid) MB, file $(du -m "$data/redrive.redb" | cut -f1) MB, $(echo "$(date +%s.%N) - $start" | bc) s"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  for k in 1 2; do
    t0=$(date +%s.%N)
    "$BIN" serve --port "$PORT" --data-dir "$data" >/dev/null 2>&1 &
    pid=$!
    wait_ready
    echo "restart $k: ready in $(echo "$(date +%s.%N) - $t0" | bc) s, RSS $(rss_mb $pid) MB, peak $(hwm_mb $pid) MB"
    [ "$k" = 2 ] || { kill "$pid"; wait "$pid" 2>/dev/null || true; }
  done
  echo "deep  $(bench --pattern interleaved --batch 1 --concurrency 1 --size 1024 --messages 3000 --queue deep --no-purge)"
  echo "empty $(bench --pattern interleaved --batch 1 --concurrency 1 --size 1024 --messages 3000 --queue empty)"
  echo "deep  $(bench --pattern interleaved --batch 1 --concurrency 1 --size 1024 --messages 3000 --queue deep --no-purge)"
  echo "empty $(bench --pattern interleaved --batch 1 --concurrency 1 --size 1024 --messages 3000 --queue empty)"
  echo "after the latency runs: RSS $(rss_mb $pid) MB"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  ;;
ab)
  rounds=${2:-3}
  hz=$(getconf CLK_TCK)
  for r in $(seq "$rounds"); do
    for side in A B; do
      bin=$BIN_A; [ "$side" = B ] && bin=$BIN_B
      data=$(mktemp -d /tmp/issue16-ab.XXXXXX)
      "$bin" serve --port "$PORT" --data-dir "$data" >/dev/null 2>&1 &
      pid=$!
      wait_ready
      c0=$(cpu_ticks $pid)
      out=$(bench --pattern interleaved --batch 10 --concurrency 16 --messages 1000000 \
        --duration 8 --queue tp)
      c1=$(cpu_ticks $pid)
      echo "round $r $side $out cpu_ms=$(( (c1 - c0) * 1000 / hz )) load=$(cut -d' ' -f1 /proc/loadavg)"
      kill "$pid"; wait "$pid" 2>/dev/null || true
      rm -rf "$data"
    done
  done
  ;;
*)
  sed -n 2,15p "$0"; exit 2 ;;
esac
