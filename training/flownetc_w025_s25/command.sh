#!/bin/bash
# FlowNetC w0.25 BN on flying photos (stop 25), from the then-shipped synthetic weights (now in training/synthetic_init): 3500 steps, 22 min on an
# AVX-512 BF16 host (bf16 autocast by --precision auto). Stage 2 (command_stage2.sh) continued from its weights;
# that result ships as flowmatch/weights/flownetc_small_photos.safetensors (a later run: --init that file).
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train flownetc --data flying-photos --width 0.25 --batch-norm --crop 256 320 \
  --batch-size 8 --steps 3500 --lr 1e-4 --workers 1 --threads 2 --eval-every 500 --ckpt-every 500 --ckpt-minutes 5 \
  --time-budget 35 --init training/synthetic_init/flownetc_small_synthetic.safetensors --out training/flownetc_w025_s25 "$@"
