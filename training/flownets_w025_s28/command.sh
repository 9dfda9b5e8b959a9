#!/bin/bash
# FlowNetS w0.25 BN on flying photos (stop 28), from the shipped synthetic weights, fp32 (this session's host
# has AVX-512 but no AVX-512 BF16 / AMX, so --precision auto is fp32): 4000 steps in 52 min alone on the machine.
# Its final weights, stored in float16, ship as flowmatch/weights/flownets_small_photos.safetensors
# (load_checkpoint + save_checkpoint(..., half=True)); history.json and config.json are the run's.
# Resume an interrupted run with: command.sh --resume
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m flowmatch train flownets --data flying-photos --width 0.25 --batch-norm --crop 256 320 \
  --batch-size 8 --steps 4000 --lr 1e-4 --workers 1 --threads 2 --eval-every 500 --ckpt-every 500 --ckpt-minutes 5 \
  --time-budget 55 --init training/synthetic_init/flownets_small_synthetic.safetensors --out /work/runs/flownets_s28 "$@"
