#!/bin/bash
# Longer bf16 training of the dense descriptor (stop 26): the shipped 8000-step net (--init), 16 000 more steps,
# a fresh cosine from 4e-4, bf16 autocast (precision auto on an AVX-512 BF16 host), 94 min at ~2.9 steps/s.
# step_00016000.safetensors is its final snapshot (fp16, 0.44 MiB). Not shipped: in the pipeline it is level
# with the shipped net (README "Descriptors judged in the pipeline").
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train patchbatch \
  --data flying-photos@0.4 --data flying-photos-final@0.2 --data photos@0.4 \
  --variant dense --width 0.5 --loss cent-drlim-sd --margin 25 --mining hardest \
  --init flowmatch/weights/patchbatch_dense.safetensors \
  --batch 128 --frames-per-batch 4 --steps 16000 --lr 4e-4 --time-budget 108 \
  --workers 1 --threads 2 --eval-every 2000 --snapshot-every 2000 --ckpt-every 1000 --ckpt-minutes 5 \
  --out training/patchbatch_w05_long "$@"
