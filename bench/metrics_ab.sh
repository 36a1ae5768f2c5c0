#!/usr/bin/env bash
# A/B: strict durable server, --metrics on vs off, interleaved batch 10 c=16, 8 s, alternating.
set -u
B=${B:-target/release}
for round in 1 2 3 4; do
  for mode in on off; do
    dir=$(mktemp -d)
    $B/redrive serve --port 9455 --data-dir "$dir" --metrics $mode >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do $B/redrive health --endpoint http://127.0.0.1:9455 2>/dev/null && break; sleep 0.1; done
    r=$($B/redrive-bench --endpoint http://127.0.0.1:9455 --pattern interleaved --batch 10 --concurrency 16 --duration 8 --messages 1000000 --depth 10000 --summary 2>/dev/null | grep RESULT)
    echo "round=$round metrics=$mode $r"
    kill $pid; wait $pid 2>/dev/null; rm -rf "$dir"
  done
done
