#!/usr/bin/env bash
# The benchmark matrix of docs/performance.md, in one run, with one load generator:
# redrive (durable strict, durable relaxed, in-memory) and moto_server, each driven by
# `redrive-bench --pattern interleaved` at batch 1 and 10, concurrency 1 and 16.
#
#   bench/compare.sh                    # needs moto_server: MOTO_SERVER=path (default: the
#                                       # conformance venv, tests/conformance/run.sh installs it)
#   DURATION=10 bench/compare.sh        # seconds per cell (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
MOTO_SERVER=${MOTO_SERVER:-.conformance/moto/venv-json/bin/moto_server}
cargo build --release -q -p redrive -p redrive-bench
BENCH=target/release/redrive-bench
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"; kill $(jobs -p) 2>/dev/null || true' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
  for _ in $(seq 100); do
    curl -s -o /dev/null -X POST -H 'Content-Type: application/x-amz-json-1.0' \
      -H 'X-Amz-Target: AmazonSQS.ListQueues' -d '{}' "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  echo "server on $1 did not start" >&2; return 1
}

run_target() {  # $1 = label, rest = server command (PORT substituted)
  local label=$1; shift
  local port; port=$(free_port)
  "${@//PORT/$port}" >/dev/null 2>&1 &
  local pid=$!
  wait_ready "$port"
  for batch in 1 10; do
    for conc in 1 16; do
      line=$("$BENCH" --endpoint "http://127.0.0.1:$port" --pattern interleaved --batch "$batch" \
        --concurrency "$conc" --messages 1000000 --duration "$DURATION" --summary \
        --queue "cmp-$batch-$conc" | grep '^RESULT')
      echo "$label $line"
    done
  done
  line=$("$BENCH" --endpoint "http://127.0.0.1:$port" --pattern send --batch 1 --concurrency 1 \
    --messages 1000000 --duration "$DURATION" --summary --queue cmp-send | grep '^RESULT')
  echo "$label $line"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_target strict target/release/redrive serve --port PORT --data-dir "$DATA/strict"
run_target relaxed target/release/redrive serve --port PORT --data-dir "$DATA/relaxed" --durability relaxed
run_target memory target/release/redrive serve --port PORT --in-memory
if [ -x "$MOTO_SERVER" ]; then
  run_target moto "$MOTO_SERVER" -p PORT
else
  echo "moto_server not found at $MOTO_SERVER; skipped" >&2
fi
