#!/usr/bin/env bash
# Ray nodes for precompute (and bank builds): run from the SAME checkout path, with the same .venv,
# on every machine (the workers import convis_core from it and load the same model files).
#
#   deploy/ray_cluster.sh head                 # on the head node (port 6379)
#   deploy/ray_cluster.sh worker HEAD_IP:6379  # on each GPU/CPU node
#   deploy/ray_cluster.sh stop
#
# Then point the app processes (or `python -m study precompute SLUG --ray HEAD_IP:6379`) at it:
# CONVIS_RAY=HEAD_IP:6379. CONVIS_DATA_DIR (the stimulus store) must be on a filesystem every node
# mounts at the same path (NFS, CephFS, ...): workers write the maps there, the driver checks them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RAY="$ROOT/.venv/bin/ray"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
case "${1:-}" in
head) exec "$RAY" start --head --port "${RAY_PORT:-6379}" --include-dashboard=false ${RAY_START_ARGS:-} ;;
worker)
    [ -n "${2:-}" ] || { echo "usage: $0 worker HEAD_IP:6379" >&2; exit 2; }
    exec "$RAY" start --address "$2" ${RAY_START_ARGS:-} ;;
stop) exec "$RAY" stop ;;
*) echo "usage: $0 head | worker HEAD_IP:6379 | stop" >&2; exit 2 ;;
esac
