"""The default's worst case, shown: the noisiest crops of the degraded track (benchmarks/tracks.py)
side by side, bicubic | Real-ESRGAN x4plus | a model at realism 0, auto and 1 | HR, from one
`snapsr eval` run on just those crops (its table beside the figure):

    python benchmarks/heavy_noise.py [--tracks data/tracks] [--weights NAME] [-n 3] \
        [-o results/quality/heavy_noise_crops.png]

A crop's noise is what its degradation's noise added: the LR minus its noise-free twin (the same
crop and seed through the same degradation with every noise amplitude at 0, so the same blur,
resizes and JPEG qualities; as benchmarks/tracks.py made it), as a standard deviation in 8-bit levels.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from tracks import track_degradation  # benchmarks/tracks.py, beside this script

from snapsr.degrade import DegradeConfig
from snapsr.infer.imageio import list_files, read_rgb, to_tensor
from snapsr.model.pretrained import DEFAULT


def added_noise(lr: torch.Tensor, hr: torch.Tensor, name: str, seed: int) -> float:
    """The spread of ``lr`` less its noise-free twin in 8-bit levels (``(1, 3, h, w)`` in [0, 1])."""
    twin = track_degradation(hr, name, seed, DegradeConfig().without_noise())
    return float((lr - twin).std() * 255)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", default="data/tracks")
    ap.add_argument("--weights", default=DEFAULT, help="a bundled name or .safetensors (default: the bundled default)")
    ap.add_argument("-n", type=int, default=3, help="how many of the noisiest crops")
    ap.add_argument("--size", type=int, default=256, help="crop side in output pixels")
    ap.add_argument("-o", "--out", default="results/quality/heavy_noise_crops.png")
    a = ap.parse_args()
    track = Path(a.tracks) / "degraded"
    if not (track / "lr").is_dir():
        sys.exit(f"error: no degraded track in {a.tracks} (make it: python benchmarks/tracks.py PHOTOS -o {a.tracks})")
    scored = []
    for lr_p in list_files(track / "lr"):
        lr = to_tensor(read_rgb(lr_p)).unsqueeze(0)
        hr = to_tensor(read_rgb(track / "hr" / lr_p.name)).unsqueeze(0)
        name, _, seed = lr_p.stem.rpartition("_s")
        scored.append((added_noise(lr, hr, name, int(seed)), lr_p))
    scored.sort(key=lambda s: s[0], reverse=True)
    picked = scored[: a.n]
    for noise, p in picked:
        print(f"{p.stem}: added noise {noise:.1f} levels (the track's median {scored[len(scored) // 2][0]:.1f})")
    with tempfile.TemporaryDirectory() as tmp:
        for _, p in picked:
            for role in ("lr", "hr"):
                (Path(tmp) / role).mkdir(exist_ok=True)
                shutil.copy(track / role / p.name, Path(tmp) / role / p.name)
        cmd = ["snapsr", "eval", "--peer", "realesrgan-x4plus", "--lr", f"{tmp}/lr", "--hr", f"{tmp}/hr"]
        cmd += ["--weights", a.weights, "--realism", "0,auto,1"]
        cmd += ["--strip", a.out, "--strip-images", str(a.n), "--strip-size", str(a.size)]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
