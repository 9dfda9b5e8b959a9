#!/bin/bash
# Stage 2 (stop 28), as FlowNetC's command_stage2.sh: 2000 more flying-photos steps from stage 1's result (the
# shipped flowmatch/weights/flownets_small_photos.safetensors), a fresh cosine at 7e-5, fp32, 27 min. It ended worse
# on the held-out mean (13.58 against 13.45), so its weights were not kept (README).
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train flownets --data flying-photos --width 0.25 --batch-norm --crop 256 320 \
  --batch-size 8 --steps 2000 --lr 7e-5 --workers 1 --threads 2 --eval-every 500 --ckpt-every 500 --ckpt-minutes 5 \
  --time-budget 31 --seed 1 --init flowmatch/weights/flownets_small_photos.safetensors --out /work/runs/flownets_s28_stage2 "$@"
