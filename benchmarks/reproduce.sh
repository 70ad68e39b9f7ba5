#!/usr/bin/env bash
# Every number and figure in the README's Results and Speed sections, from one command:
#   bash benchmarks/reproduce.sh [WEIGHTS] [PHOTOS_DIR]
# WEIGHTS defaults to the bundled default; PHOTOS_DIR to the project's validation photos.
# Writes results/ (tables as Markdown/CSV/JSON, plots and crops as PNG). About 20 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
weights=${1:-snapsr/pretrained/snapsr-x4-teacher-s.safetensors}
photos=${2:-../shared/data/photos/val}
mkdir -p results

# 1. the evaluation set: the validation photos under the second-order degradations, x4, fixed seed
snapsr degrade "$photos" -o data/val_x4 --scale 4 --seed 0

# 2. the teacher at 1, 4 and 16 Euler/Heun steps (realism 1: the plain ODE sample), beside bicubic
snapsr eval --weights "$weights" --lr data/val_x4/lr --hr data/val_x4/hr \
    --steps 1,4,16 --sampler euler,heun --realism 1 --out-dir results/steps

# 3. the realism dial at the default step count, with the perception-distortion plot and crops
snapsr eval --weights "$weights" --lr data/val_x4/lr --hr data/val_x4/hr \
    --realism 0,0.25,0.5,0.75,1 --out-dir results/dial --plot results/pd.png --strip results/dial_strip.png

# 4. speed beside bicubic and Real-ESRGAN x4plus, and peak memory for a 3000x2000 output
snapsr bench --weights "$weights" --lr-size 128x128 --repeats 5 --memory --json results/bench.json \
    | tee results/bench.md

# 5. training throughput of each backbone size
python benchmarks/train_speed.py --json results/train_speed.json | tee results/train_speed.txt
