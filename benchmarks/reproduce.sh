#!/usr/bin/env bash
# Every number and figure in the README's Results and Speed sections, from one command:
#   bash benchmarks/reproduce.sh [PHOTOS_DIR]
# PHOTOS_DIR defaults to the project's validation photos. Writes results/ (tables as
# Markdown/CSV/JSON, plots and crops as PNG). About 40 minutes on 2 CPU cores.
# (results/students_full/ and results/cuda/ came from a lent GPU: see the README.)
set -euo pipefail
cd "$(dirname "$0")/.."
student=${STUDENT:-snapsr/assets/weights/snapsr-x4-oftsr-s.safetensors}
teacher=${TEACHER:-snapsr/assets/weights/snapsr-x4-teacher-s.safetensors}
photos=${1:-../shared/data/photos/val}
mkdir -p results

# 1. the evaluation set: the validation photos under the second-order degradations, x4, fixed seed
snapsr degrade "$photos" -o data/val_x4 --scale 4 --seed 0

# 2. the bundled one-step default over the realism dial, with the perception-distortion plot and crops
snapsr eval --weights "$student" --lr data/val_x4/lr --hr data/val_x4/hr \
    --realism 0,0.25,0.5,0.75,1 --out-dir results/student_dial --plot results/student_pd.png \
    --strip results/student_dial_strip.png

# 3. the teacher at 1, 4 and 16 Euler/Heun steps (realism 1: the plain ODE sample), beside bicubic
snapsr eval --weights "$teacher" --lr data/val_x4/lr --hr data/val_x4/hr \
    --steps 1,4,16 --sampler euler,heun --realism 1 --out-dir results/steps

# 4. the teacher's realism dial at its default step count
snapsr eval --weights "$teacher" --lr data/val_x4/lr --hr data/val_x4/hr \
    --realism 0,0.25,0.5,0.75,1 --out-dir results/dial --plot results/pd.png --strip results/dial_strip.png

# 5. speed beside bicubic and Real-ESRGAN x4plus (a small and a photo-sized LR), peak memory for a
#    3000x2000 output, and the same without the huge-page allocator setting
snapsr bench --weights "$student" --lr-size 128x128 --repeats 5 --memory --json results/student_bench.json \
    | tee results/student_bench.md
snapsr bench --weights "$student" --lr-size 512x384 --repeats 3 --json results/student_bench_512.json \
    | tee results/student_bench_512.md
SNAPSR_NO_HUGEPAGES=1 snapsr bench --weights "$student" --lr-size 512x384 --repeats 3 --no-baselines \
    | tee results/student_bench_512_no_hugepages.md
snapsr bench --weights "$teacher" --lr-size 128x128 --repeats 5 --memory --json results/bench.json \
    | tee results/bench.md

# 6. the three tracks beside Real-ESRGAN x4plus, and the whole command's speed against it
bash benchmarks/quality.sh "$student" results/quality "$photos"
python benchmarks/cli_speed.py --photos "$photos" --json results/cli_speed.json | tee results/cli_speed.md

# 7. training throughput of each backbone size
python benchmarks/train_speed.py --json results/train_speed.json | tee results/train_speed.txt
