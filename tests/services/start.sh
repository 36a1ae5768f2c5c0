#!/usr/bin/env bash
# Starts a Redis and a PostgreSQL on 127.0.0.1 (free ports) for the tests of the `services`
# nextest profile, installing Debian's packages when missing. PostgreSQL runs as a non-root
# user. Source it to get the URLs exported; `stop.sh` kills both by PID.
#
#   source tests/services/start.sh   # exports REDRIVE_TEST_REDIS_URL, REDRIVE_TEST_POSTGRES_URL
set -euo pipefail

SERVICES_DIR="${REDRIVE_SERVICES_DIR:-/tmp/redrive-services}"
PG_USER="${REDRIVE_SERVICES_PG_USER:-redrive-pg}"

if ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server postgresql >/dev/null
    else
        DEBIAN_FRONTEND=noninteractive sudo apt-get install -y redis-server postgresql >/dev/null
    fi
fi
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A previous run's services are stopped first (their data directory is reused).
bash "$(dirname "${BASH_SOURCE[0]}")/stop.sh"
mkdir -p "$SERVICES_DIR"
chmod 755 "$SERVICES_DIR"

# Redis: no persistence, loopback only.
REDIS_PORT="$(free_port)"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log" \
    --dir "$SERVICES_DIR"

# PostgreSQL refuses to run as root: a dedicated user owns the data directory.
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
    as_pg() { runuser -u "$PG_USER" -- "$@"; }
fi
PG_DATA="$SERVICES_DIR/pgdata"
PG_PORT="$(free_port)"
rm -rf "$PG_DATA"
mkdir -p "$PG_DATA"
[ "$(id -u)" = 0 ] && chown "$PG_USER" "$PG_DATA"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U redrive --auth=trust >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DATA -c fsync=off" start >/dev/null
head -n 1 "$PG_DATA/postmaster.pid" > "$SERVICES_DIR/postgres.pid"

for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done

export REDRIVE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
export REDRIVE_TEST_POSTGRES_URL="postgres://redrive@127.0.0.1:$PG_PORT/postgres"
printf 'export REDRIVE_TEST_REDIS_URL=%s\nexport REDRIVE_TEST_POSTGRES_URL=%s\n' \
    "$REDRIVE_TEST_REDIS_URL" "$REDRIVE_TEST_POSTGRES_URL" | tee "$SERVICES_DIR/env"
