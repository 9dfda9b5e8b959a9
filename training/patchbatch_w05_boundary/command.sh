#!/bin/bash
# Motion-boundary negatives (stop 31): the shipped width-0.5 dense net (--init) fine-tuned with 30 % of the
# triplets' anchors taken where another motion lies in their 62-px context, each with its negative at
# p + flow(q) for such a context pixel q (flowmatch.data.patch_pairs): where the context's motion would
# carry the anchor. A descriptor that reads its context more than its centre confuses exactly these, and
# on real pairs near motion boundaries the shipped net is no better than raw 9x9 patches. The recipe of
# patchbatch_w05_long/command.sh otherwise (bf16 autocast where native), a fresh 14 000-step cosine from
# 5e-4 fitted to an 85-minute budget. The run folder (optimizer checkpoint) is outside the repo;
# config.json and history.json are copied here.
# Resume an interrupted run with: command.sh --resume
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train patchbatch \
  --data flying-photos@0.4 --data flying-photos-final@0.2 --data photos@0.4 \
  --variant dense --width 0.5 --loss cent-drlim-sd --margin 25 --mining hardest --boundary-negatives 0.3 \
  --init flowmatch/weights/patchbatch_dense.safetensors \
  --batch 128 --frames-per-batch 4 --steps 14000 --lr 5e-4 --time-budget 85 \
  --workers 1 --threads 2 --eval-every 1000 --snapshot-every 1000 --ckpt-every 500 --ckpt-minutes 5 \
  --out /work/runs/patchbatch_w05_boundary "$@"
