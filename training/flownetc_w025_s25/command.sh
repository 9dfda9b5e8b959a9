#!/bin/bash
# FlowNetC w0.25 BN on flying photos (stop 25), from the shipped synthetic weights: 3500 steps, 22 min on an
# AVX-512 BF16 host (bf16 autocast by --precision auto). final_fp16.safetensors is its result; a later run
# continues from it with --init training/flownetc_w025_s25/final_fp16.safetensors (weights only).
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train flownetc --data flying-photos --width 0.25 --batch-norm --crop 256 320 \
  --batch-size 8 --steps 3500 --lr 1e-4 --workers 1 --threads 2 --eval-every 500 --ckpt-every 500 --ckpt-minutes 5 \
  --time-budget 35 --init flowmatch/weights/flownetc_small_synthetic.safetensors --out training/flownetc_w025_s25 "$@"
