#!/usr/bin/env bash
# train-mnist.sh — the main job: build cdgan-train, fetch MNIST, train the paper's MNIST CD-GAN
# preset on the CPU for a short budget, and print where its samples, metrics and checkpoint are.
#
#   bash scripts/train-mnist.sh                 # ITERATIONS (default below) iterations into runs/mnist
#   ITERATIONS=20000 bash scripts/train-mnist.sh --resume     # extra flags go to cdgan-train
#   PRESET=mnist-imsat ITERATIONS=5000 bash scripts/train-mnist.sh   # another preset (default mnist)
#
# A longer run can be split over several sittings: run again with --resume and a larger ITERATIONS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
bash scripts/install-deps.sh
bash scripts/setup-data.sh mnist
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build-train -DCMAKE_BUILD_TYPE=Release -DCDGAN_BUILD_TESTS=OFF -DCDGAN_BUILD_BENCHMARKS=OFF \
      -DCDGAN_BUILD_EXAMPLES=ON >/dev/null
cmake --build build-train --target cdgan-train -j"$(nproc)"
ITERATIONS="${ITERATIONS:-300}"   # about 15 minutes on a 2-core CPU (see README)
OUT="${OUT:-runs/mnist}"
PRESET="${PRESET:-mnist}"
./build-train/examples/cdgan-train train --preset "$PRESET" --iterations "$ITERATIONS" --eval-every 100 \
    --out "$OUT" "$@"
echo "samples:    $OUT/samples.png (one row per c, one column per z)"
echo "metrics:    $OUT/metrics.jsonl (ACC, purity, NMI, ARI, consistency per evaluation)"
echo "checkpoint: $OUT/checkpoint.safetensors"
