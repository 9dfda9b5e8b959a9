#!/bin/bash
cd "$(dirname "$0")/../.."
exec nice -n 8 .venv/bin/python -m flowmatch train patchbatch \
  --data flying-photos@0.4 --data flying-photos-final@0.2 --data photos@0.4 \
  --variant dense --width 0.5 --loss cent-drlim-sd --margin 25 --mining hardest \
  --batch 128 --frames-per-batch 4 --steps 8000 --time-budget 115 \
  --workers 1 --threads 2 --eval-every 500 --snapshot-every 500 --ckpt-every 250 \
  --out training/patchbatch_w05 "$@"
