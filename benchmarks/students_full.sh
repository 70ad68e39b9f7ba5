#!/usr/bin/env bash
# OFTSR against GTASR at full length: four students trained side by side on one GPU, then scored
# over the dial. Writes results/students_full/ (README: "OFTSR against GTASR at full length").
#   bash benchmarks/students_full.sh            # on a machine with a GPU and 16 cores
# The README's runs used the step counts below, fitted to a 7-minute window of an H100 where the
# four processes ran at 5-8 steps/s each; runs/ keeps checkpoints, so a stopped run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3}
common=(train.batch_size=32 data.workers=2 train.val_every=1000 train.ckpt_every=500 --device "${DEVICE:-cuda}")
declare -A runs=(
  [oftsr_g]="oftsr configs/oftsr_s.toml train.steps=3000"
  [oftsr]="oftsr configs/oftsr_s.toml train.steps=3000 rcod.groups=0 rcod.estimator=false"
  [gtasr]="gtasr configs/gtasr_s.toml train.steps=2500 gtasr.stage2_start=1875 gtasr.refresh_every=157"
  [gtasr_g]="gtasr configs/gtasr_s.toml train.steps=2500 gtasr.stage2_start=1875 gtasr.refresh_every=157 rcod.groups=4 rcod.estimator=true"
)
for name in "${!runs[@]}"; do
  read -r recipe config args <<<"${runs[$name]}"
  # shellcheck disable=SC2086
  snapsr train distill --recipe "$recipe" --config "$config" $args "${common[@]}" \
      "train.out_dir=runs/students_full/$name" --resume >"runs/students_full_$name.log" 2>&1 &
done
wait
[ -d data/val_x4/lr ] || snapsr degrade ../shared/data/photos/val -o data/val_x4 --scale 4 --seed 0
for name in "${!runs[@]}"; do
  snapsr eval --weights "runs/students_full/$name/ema.safetensors" --lr data/val_x4/lr --hr data/val_x4/hr \
      --realism 0,0.25,0.5,0.75,1 --device "${DEVICE:-cuda}" --out-dir "results/students_full/$name" >/dev/null &
done
wait
for name in "${!runs[@]}"; do cp "runs/students_full/$name/config.json" "results/students_full/$name/train_config.json"; done
