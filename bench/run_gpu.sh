#!/usr/bin/env bash
# The device check, as one script: install the carried wheels, GPU correctness, then the bench.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 CONVIS_DATA_DIR=$PWD/.data
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 bench/gpu_check.py 2>&1 | grep -v WARNING | tee "$OUT/gpu_check.txt"
python3 bench/bench_convis.py --device cuda --loop-sample 100 --text-sample 4096 --batch-size 256 --json "$OUT/bench_gpu.json" 2>&1 | grep -v WARNING | tee "$OUT/bench_gpu.txt"
# Precompute on Ray (one actor per GPU) vs the local executor on the same GPU; needs the ray wheel among
# the carried ones (.whl/ray-2.60.0-*.whl, as locked in requirements.txt).
if python3 -c "import ray" 2>/dev/null; then
    python3 bench/bench_ray.py --device cuda --model ViT-B-32-quickgelu --pretrained none --stride 16 --images 32 \
        --json "$OUT/bench_ray_gpu.json" 2>&1 | grep -v WARNING | tee "$OUT/bench_ray_gpu.txt"
else
    echo "ray is not installed here: Ray path not run (carry the ray wheel in .whl/)" | tee "$OUT/bench_ray_gpu.txt"
fi
