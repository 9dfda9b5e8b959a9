#!/bin/bash
# FlowNetC stage 1 (flying photos), resumable across sessions: `command.sh --resume` continues by steps.
cd "$(dirname "$0")/../.."
exec nice -n 2 .venv/bin/python -m flowmatch train flownetc \
  --data flying-photos --width 0.25 --batch-norm --crop 256 320 --batch-size 8 \
  --steps 30000 --lr 1e-4 --workers 1 --threads 2 --eval-every 500 --ckpt-every 250 --ckpt-minutes 5 \
  --out training/flownetc_w025 "$@"
