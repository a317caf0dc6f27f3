#!/usr/bin/env bash
# The device check, as one script: install the carried wheels, GPU correctness, then the bench.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 CONVIS_DATA_DIR=$PWD/.data
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 bench/gpu_check.py 2>&1 | grep -v WARNING | tee "$OUT/gpu_check.txt"
python3 bench/bench_convis.py --device cuda --loop-sample 100 --text-sample 4096 --batch-size 256 --json "$OUT/bench_gpu.json" 2>&1 | grep -v WARNING | tee "$OUT/bench_gpu.txt"
