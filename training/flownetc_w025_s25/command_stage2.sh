#!/bin/bash
# Stage 2 (stop 25): 3000 more steps from stage 1's weights (command.sh), a fresh cosine at 7e-5, 19 min.
# Its result ships as flowmatch/weights/flownetc_small_photos.safetensors (stage 1 weights are not kept:
# command.sh remakes them; this script read them from training/flownetc_w025_s25/final_fp16.safetensors).
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train flownetc --data flying-photos --width 0.25 --batch-norm --crop 256 320 \
  --batch-size 8 --steps 3000 --lr 7e-5 --workers 1 --threads 2 --eval-every 500 --ckpt-every 500 --ckpt-minutes 5 \
  --time-budget 22 --init training/flownetc_w025_s25/final_fp16.safetensors --out training/flownetc_w025_s25_stage2 "$@"
