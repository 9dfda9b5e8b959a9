#!/bin/bash
# PatchBatch fine-tuning for the combined descriptor (stop 25): the shipped 8000-step net, loss on [net, raw 9x9].
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train patchbatch \
  --data flying-photos@0.4 --data flying-photos-final@0.2 --data photos@0.4 \
  --variant dense --width 0.5 --loss cent-drlim-sd --margin 1 --mining hardest --raw-weight 0.5 \
  --init flowmatch/weights/patchbatch_dense.safetensors \
  --batch 128 --frames-per-batch 4 --steps 2500 --lr 2e-4 --time-budget 45 \
  --workers 1 --threads 2 --eval-every 250 --snapshot-every 250 --ckpt-every 250 \
  --out training/patchbatch_w05_raw "$@"
