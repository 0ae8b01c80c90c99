# trainer_common.sh — sourced by the trainer's test scripts (trainer_smoke.sh, trainer_train.sh,
# trainer_cuda_smoke.sh), each called as SCRIPT TRAINER DATA_DIR WORK. Sets bin, data and work,
# skips (exit 77) without the MNIST files, empties $work, and defines `small`: the mnist preset at
# small batches on one thread with a cheap evaluation (the scripts add the quality settings).
set -euo pipefail
bin="$1" data="$2" work="$3"
if [[ ! -s "$data/train-images-idx3-ubyte" && ! -s "$data/train-images-idx3-ubyte.gz" ]]; then
  echo "SKIPPED: no MNIST in $data (run scripts/setup-data.sh mnist)"; exit 77
fi
rm -rf "$work" && mkdir -p "$work"
small=(--preset mnist --data-dir "$data" --threads 1 --batch-e 32 --batch-g 16 --batch-d 16 --eval-samples 300
       --kmeans-restarts 2 --log-every 1)
