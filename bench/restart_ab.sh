#!/usr/bin/env bash
# Restart A/B (docs/performance.md, "Issue 16, second slice"): two server builds start over the
# same data directory in turn; prints time until ListQueues answers, the server's CPU (user+sys)
# at that moment, RSS and peak RSS.
#
#   BIN_A=... BIN_B=... bench/restart_ab.sh DIR [ROUNDS]
set -u
DIR=$1; ROUNDS=${2:-3}; PORT=${PORT:-9462}; EP="http://127.0.0.1:$PORT"
hz=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do for side in A B; do
  bin=$BIN_A; [ "$side" = B ] && bin=$BIN_B
  t0=$(date +%s.%N)
  "$bin" serve --port "$PORT" --data-dir "$DIR" >/dev/null 2>&1 &
  pid=$!
  until curl -s -o /dev/null -X POST -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: AmazonSQS.ListQueues' -d '{}' "$EP/"; do sleep 0.01; done
  t=$(echo "$(date +%s.%N) - $t0" | bc)
  c=$(awk -v hz="$hz" '{print int(($14+$15)*1000/hz)}' "/proc/$pid/stat")
  echo "round $r $side ready ${t}s cpu ${c}ms rss $(awk '/VmRSS/{print int($2/1024)}' "/proc/$pid/status")MB peak $(awk '/VmHWM/{print int($2/1024)}' "/proc/$pid/status")MB load $(cut -d' ' -f1 /proc/loadavg)"
  kill "$pid"; wait "$pid"
done; done
