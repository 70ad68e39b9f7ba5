"""Issue 11's realism-1 detail test, per crop: the high-band energy ratio on detailed and flat crops.

A mean hides what the test asks: that on each *detailed* HR crop the output's energy above the LR
Nyquist frequency is 0.6-1.5 of the HR's (texture put back, not missing), and a flat crop (sky,
skin) is not filled with energy the HR lacks. A crop is detailed when its HR has at least
``--threshold`` high-band energy per pixel (``metrics.hf_energy`` over its area; 5e4 splits the
validation tracks' 48 crops into 21 detailed and 27 flat). Reads an ``snapsr eval --out-dir``:

    python benchmarks/detail_split.py data/tracks/degraded/hr runs/eval/degraded
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from snapsr.eval.metrics import hf_energy
from snapsr.infer.imageio import list_files, read_rgb


@click.command()
@click.argument("hr_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("eval_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--threshold", type=float, default=5e4, show_default=True, help="HR high-band energy per pixel.")
@click.option("--scale", type=int, default=4, show_default=True)
def main(hr_dir, eval_dir, threshold, scale):
    results = json.loads((Path(eval_dir) / "results.json").read_text())
    detailed = set()
    names = set()
    for path in list_files(hr_dir):
        img = read_rgb(path)
        names.add(path.stem)
        if hf_energy(img, scale) / (img.shape[0] * img.shape[1]) >= threshold:
            detailed.add(path.stem)
    print(f"{len(detailed)} detailed and {len(names - detailed)} flat crops (threshold {threshold:g})")
    print("| series | detailed: median hf | in 0.6-1.5 | flat: median hf |")
    print("|---|---|---|---|")
    for key, series in results.items():
        per = series.get("per_image", {})
        d = [v["hf_ratio"] for k, v in per.items() if k in detailed]
        f = [v["hf_ratio"] for k, v in per.items() if k not in detailed]
        if not d:
            continue
        n_in = sum(0.6 <= x <= 1.5 for x in d)
        print(f"| {key} | {np.median(d):.2f} | {n_in} of {len(d)} | {np.median(f) if f else float('nan'):.2f} |")


if __name__ == "__main__":
    sys.exit(main())
