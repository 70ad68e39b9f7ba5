#!/usr/bin/env bash
# Which student components help, measured: each recipe and flag trained the same short way from
# the bundled teacher, then scored the same way at realism 0, 0.5 and 1. Writes results/students.md.
#   STEPS=300 bash benchmarks/students.sh [PHOTOS_DIR]
# Short runs on small crops (a ranking of components, not the shipped model). About 4 minutes per
# run on 2 CPU cores at the default STEPS; RUNS="oftsr gtasr" picks a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-300}
photos=${1:-../shared/data/photos/val}
teacher=snapsr/assets/weights/snapsr-x4-teacher-s.safetensors
val=data/val_x4_512
[ -d "$val/lr" ] || snapsr degrade "$photos" -o "$val" --scale 4 --seed 0 --max-size 512

common=(data.crop=96 train.batch_size=8 "train.steps=$steps" train.lr=5e-5 train.warmup=20
        train.val_every=0 train.ckpt_every=50 train.ema_decay=0.99)
declare -A runs=(
  [oftsr]="oftsr teacher=$teacher"
  [oftsr+groups]="oftsr teacher=$teacher rcod.groups=4"
  [oftsr+groups+prompt+estimator]="oftsr teacher=$teacher rcod.groups=4 rcod.prompt=true rcod.estimator=true"
  [oftsr+hfp]="oftsr teacher=$teacher perception.w_hfp=0.02"
  [oftsr+adv]="oftsr teacher=$teacher perception.w_adv=0.005 perception.adv_start=50 perception.adv_ramp=50"
  [gtasr]="gtasr init=$teacher"
  [gtasr+drsr]="gtasr init=$teacher gtasr.stage2_start=$((steps / 2)) gtasr.refresh_every=50"
  [gtasr+groups+prompt+estimator]="gtasr init=$teacher rcod.groups=4 rcod.prompt=true rcod.estimator=true"
)
order=${RUNS:-"oftsr oftsr+groups oftsr+groups+prompt+estimator oftsr+hfp oftsr+adv gtasr gtasr+drsr gtasr+groups+prompt+estimator"}
for name in $order; do
  read -r recipe args <<<"${runs[$name]}"
  out=runs/students/$name
  # shellcheck disable=SC2086
  snapsr train distill --recipe "$recipe" "${common[@]}" "train.out_dir=$out" $args --resume
  snapsr eval --weights "$out/ema.safetensors" --lr "$val/lr" --hr "$val/hr" --realism 0,0.5,1 \
      --out-dir "results/students/$name" >/dev/null
done
python - "$order" <<'PY'
import json, sys
from pathlib import Path
names = sys.argv[1].split()
keys = ("psnr_y", "ssim_y", "hf_ratio", "niqe")
lines = ["| run | realism | PSNR-Y | SSIM-Y | HF ratio | NIQE |", "|---|---:|---:|---:|---:|---:|"]
bicubic = None
for name in names:
    res = json.loads(Path(f"results/students/{name}/results.json").read_text())
    for label, r in res.items():
        m = r["mean"]
        row = f"{m['psnr_y']:.2f} | {m['ssim_y']:.4f} | {m['hf_ratio']:.3f} | {m['niqe']:.2f} |"
        if label == "bicubic":
            bicubic = row
        else:
            lines.append(f"| {name} | {r['realism']:g} | {row}")
lines.insert(2, f"| bicubic | | {bicubic}")
Path("results/students.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
