#!/usr/bin/env bash
# trainer_cuda_smoke.sh CDGAN_TRAIN_CUDA DATA_DIR WORK — the nvcc-built trainer: 4 MNIST iterations
# with --device cuda, then --resume for 2 more; outputs exist and losses are finite. Without a usable
# GPU the run must fail with the library's "no usable CUDA device" message (checked), and the test
# reports itself skipped (exit 77). The same binary's --device cpu path is checked either way.
source "$(dirname "${BASH_SOURCE[0]}")/trainer_common.sh"
common=("${small[@]}" --quality-samples 0)
"$bin" train "${common[@]}" --device cpu --iterations 2 --eval-every 2 --out "$work/cpu" > "$work/cpu.log"
[[ -s "$work/cpu/checkpoint.safetensors" ]] || { echo "the nvcc-built trainer's --device cpu run wrote no checkpoint"; exit 1; }
if ! "$bin" train "${common[@]}" --device cuda --iterations 4 --eval-every 2 --out "$work/gpu" > "$work/gpu.log" 2> "$work/gpu.err"; then
  if grep -q "no usable CUDA device" "$work/gpu.err"; then
    echo "SKIPPED: no CUDA device ($(cat "$work/gpu.err"))"; exit 77
  fi
  echo "the CUDA run failed:"; cat "$work/gpu.err"; exit 1
fi
"$bin" train "${common[@]}" --device cuda --iterations 6 --eval-every 2 --out "$work/gpu" --resume > "$work/gpu2.log"
for f in samples.png metrics.jsonl checkpoint.safetensors; do
  [[ -s "$work/gpu/$f" ]] || { echo "missing output $f"; exit 1; }
done
if grep -E '^\[' "$work/gpu.log" "$work/gpu2.log" | grep -Eiq 'nan|inf'; then echo "non-finite loss on the GPU"; exit 1; fi
[[ $(grep -c '"step"' "$work/gpu/metrics.jsonl") == 3 ]] || { echo "expected 3 evaluations"; cat "$work/gpu/metrics.jsonl"; exit 1; }
echo "CUDA trainer smoke test passed"
