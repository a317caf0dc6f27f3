#!/usr/bin/env bash
# Start N ConVis Studio app processes on consecutive ports, all on one PostgreSQL database.
#
#   DATABASE_URL=postgresql://convis:PW@db-host/convis CONVIS_DATA_DIR=/srv/convis-data \
#     deploy/start_apps.sh start 4 8601      # processes on 8601..8604 (defaults: 2 processes, 8601)
#   deploy/start_apps.sh stop                # stops the processes this script started (pid files)
#   deploy/start_apps.sh status
#
# Every process needs the same DATABASE_URL, CONVIS_DATA_DIR (stimuli, the HMAC key of Prolific ids,
# the researcher password hash; a shared filesystem when the processes run on several hosts) or the
# same CONVIS_PID_KEY / CONVIS_ADMIN_PASSWORD. Logs and pid files go to $CONVIS_DATA_DIR/deploy/.
# APP_ADDRESS (default 127.0.0.1) is where they listen: the proxy's side only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY="${PYTHON:-$ROOT/.venv/bin/python}"
DATA="${CONVIS_DATA_DIR:-$ROOT/.data}"
RUN="$DATA/deploy"
mkdir -p "$RUN"
action="${1:-start}"

stop_all() {
    for f in "$RUN"/app-*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; echo "stopped app pid $pid ($(basename "$f" .pid))"; fi
        rm -f "$f"
    done
}

case "$action" in
stop) stop_all; exit 0 ;;
status)
    for f in "$RUN"/app-*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f"); name=$(basename "$f" .pid)
        if kill -0 "$pid" 2>/dev/null; then echo "$name: running (pid $pid)"; else echo "$name: not running"; fi
    done
    exit 0 ;;
start) ;;
*) echo "usage: $0 start [N] [BASE_PORT] | stop | status" >&2; exit 2 ;;
esac

n="${2:-2}"
base="${3:-8601}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ && "$base" =~ ^[1-9][0-9]*$ ]]; then
    echo "N and BASE_PORT must be positive integers (got N=$n BASE_PORT=$base)" >&2; exit 2
fi
case "${DATABASE_URL:-}" in
postgresql*|postgres*) ;;
*) echo "DATABASE_URL must point to PostgreSQL: several app processes share one database" \
        "(e.g. postgresql://convis:PASSWORD@db-host:5432/convis)" >&2; exit 2 ;;
esac

# Migrate once and print a new researcher password once (not N times), before the processes start.
CONVIS_DEMO="${CONVIS_DEMO:-0}" "$PY" -m study first-start >/dev/null

export CONVIS_TRUSTED_PROXY="${CONVIS_TRUSTED_PROXY:-1}"   # client addresses come from X-Forwarded-For
for ((i = 0; i < n; i++)); do
    port=$((base + i))
    if [ -e "$RUN/app-$port.pid" ] && kill -0 "$(cat "$RUN/app-$port.pid")" 2>/dev/null; then
        echo "app-$port already running (pid $(cat "$RUN/app-$port.pid"))"; continue
    fi
    nohup "$PY" -m streamlit run "$ROOT/app.py" --server.headless true --server.port "$port" \
        --server.address "${APP_ADDRESS:-127.0.0.1}" --browser.gatherUsageStats false \
        >"$RUN/app-$port.log" 2>&1 &
    echo $! >"$RUN/app-$port.pid"
    echo "started app-$port (pid $!), log $RUN/app-$port.log"
done
echo "check: $PY deploy/readiness.py --ports $base-$((base + n - 1))"
