#!/bin/bash
# The paper's width: dense PatchBatch net at width 1 (512-D) from scratch (stop 29), bf16 autocast (precision auto on
# this AVX-512 BF16 host; benchmarks/bench_training.py measured 190 triplets/s bf16 vs 96 fp32 for this net), the
# recipe of patchbatch_w05/command.sh with the margin scaled by sqrt(512/256) (25 -> 35: the BN'd output makes
# random-pair distances grow with sqrt(D)). 8000-step cosine fitted to a 95-minute budget: it stopped at step 7218.
# The run folder (with the optimizer checkpoint, 11 MiB) is outside the repo; config.json and history.json are copied
# here, and the final checkpoint, stored in float16, ships as flowmatch/weights/patchbatch_dense_w1.safetensors ("dense-512").
# Resume an interrupted run with: command.sh --resume
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train patchbatch \
  --data flying-photos@0.4 --data flying-photos-final@0.2 --data photos@0.4 \
  --variant dense --width 1.0 --loss cent-drlim-sd --margin 35 --mining hardest \
  --batch 128 --frames-per-batch 4 --steps 8000 --time-budget 95 \
  --workers 1 --threads 2 --eval-every 1000 --snapshot-every 1000 --ckpt-every 500 --ckpt-minutes 5 \
  --out /work/runs/patchbatch_w1 "$@"
