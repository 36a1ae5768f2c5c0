#!/usr/bin/env bash
# Stops what start.sh started, by the PIDs it wrote.
set -uo pipefail
SERVICES_DIR="${REDRIVE_SERVICES_DIR:-/tmp/redrive-services}"
for name in redis postgres; do
    pidfile="$SERVICES_DIR/$name.pid"
    [ -f "$pidfile" ] || continue
    pid="$(head -n 1 "$pidfile")"
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
done
