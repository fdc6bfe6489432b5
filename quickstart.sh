#!/usr/bin/env bash
# Set up dtk in ./.venv and run the main job on built-in data: the shipped model deblurs
# real demo frames (cut from scikit-image's photos) on the CPU (or the GPU when present).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/dtk ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0          # CPU build; see README for GPU
  .venv/bin/python -m pip install -q -e ".[cpu,dev]"
fi
. .venv/bin/activate
dtk doctor
dtk data demo demo                                          # 5 sequences x 4 frames, 256x448
dtk run demo -o out/demo-k7 --blur k7 --json out/demo-k7.json   # blur with k7, then deblur
dtk eval demo --model default --json out/eval-demo.json      # vs prior inverse + Wiener
