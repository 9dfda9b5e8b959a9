#!/bin/bash
# Stage 3 (stop 26): a Sintel-final-like fine-tune (flying-photos-final) of the stop-25 stage-2 weights, 1900 steps
# at 5e-5, 23 min at ~1.4 steps/s (the final-like generator is the bottleneck with one worker). Worse than its
# start on every held-out group: no weights kept.
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train flownetc --data flying-photos-final --width 0.25 --batch-norm --crop 256 320 \
  --batch-size 8 --steps 1900 --lr 5e-5 --workers 1 --threads 2 --eval-every 500 --ckpt-every 500 --ckpt-minutes 5 \
  --time-budget 27 --init flowmatch/weights/flownetc_small_photos.safetensors --out training/flownetc_w025_s26_final "$@"
