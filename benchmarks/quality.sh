#!/usr/bin/env bash
# The quality comparison: a model beside bicubic and Real-ESRGAN x4plus in the same `snapsr eval` run,
# on the three tracks of benchmarks/tracks.py (degraded, clean, real without reference):
#   bash benchmarks/quality.sh [WEIGHTS] [OUT] [PHOTOS_DIR]
# Writes OUT/{degraded,clean,real}/results.{md,csv,json} (means and per-image rows) and the crop strips;
# then the realistic end with less start noise (--temperature TEMPS, default 0.7,0.5) in OUT/temperature/,
# the peers again in each run (their outputs cached by the first).
set -euo pipefail
cd "$(dirname "$0")/.."
weights=${1:-$(python -c "from snapsr.model.pretrained import DEFAULT; print(DEFAULT)")}  # the bundled default
out=${2:-results/quality}
photos=${3:-../shared/data/photos/val}
dial=${DIAL:-0,0.25,0.5,0.75,1,auto}
temps=${TEMPS:-0.7,0.5}
python benchmarks/tracks.py "$photos" -o data/tracks
for track in degraded clean; do
    snapsr eval --weights "$weights" --peer realesrgan-x4plus --lr data/tracks/$track/lr --hr data/tracks/$track/hr \
        --realism "$dial" --out-dir "$out/$track" --strip "$out/${track}_strip.png" --strip-images 4 \
        --plot "$out/${track}_pd.png"
done
snapsr eval --weights "$weights" --peer realesrgan-x4plus --lr data/tracks/real/lr \
    --realism "$dial" --out-dir "$out/real" --strip "$out/real_strip.png" --strip-images 5
for track in degraded clean; do
    snapsr eval --weights "$weights" --peer realesrgan-x4plus --lr data/tracks/$track/lr --hr data/tracks/$track/hr \
        --realism 0.75,1 --temperature "$temps" --out-dir "$out/temperature/$track" \
        --strip "$out/temperature/${track}_strip.png" --strip-images 4
done
snapsr eval --weights "$weights" --peer realesrgan-x4plus --lr data/tracks/real/lr --realism 0.75,1 \
    --temperature "$temps" --out-dir "$out/temperature/real" --strip "$out/temperature/real_strip.png" --strip-images 5
