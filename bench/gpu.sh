#!/bin/sh
# Batching on a GPU: ms per photo at batch sizes 1 to 16 (bench/gpu.py), written to
# bench/gpu-results.json. Run it on a machine with an NVIDIA GPU, either
#   - in the GPU image (docker-compose's worker-heavy, which has TensorFlow's CUDA build):
#       docker compose --profile gpu run --rm worker-heavy sh bench/gpu.sh
#   - or with a Python that has TensorFlow for CUDA: PYTHON=/path/to/python sh bench/gpu.sh
# It exits 2, measuring nothing, where TensorFlow sees no GPU.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v .venv/bin/python || command -v python3 || command -v python)}
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
exec "$PYTHON" -m bench.gpu "$@"
