"""Peak memory of a whole `snapsr upscale` call on a large photo (issue 13's acceptance: a 6000x4000
photo at x4, a 384 MP output, under 3 GB peak resident memory at the default --max-memory).

    python benchmarks/memory.py [--size 6000x4000] [--format jpg] [--max-memory 1024]

Makes a photo-like test image of that size (the bundled example, tiled and mirrored, plus noise, as
a JPEG q90), runs `snapsr upscale` on it under `/usr/bin/time -v`, and prints the peak resident set,
the wall time and the output's size. Linux only (GNU time).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # the outputs we open to check are our own


def test_photo(w: int, h: int, path: Path) -> None:
    ex = np.asarray(Image.open(Path(__file__).parents[1] / "snapsr/assets/example.jpg").convert("RGB"))
    tile = np.concatenate([ex, ex[:, ::-1]], 1)
    tile = np.concatenate([tile, tile[::-1]], 0)
    reps = (-(-h // tile.shape[0]), -(-w // tile.shape[1]), 1)
    img = np.tile(tile, reps)[:h, :w]
    noise = np.random.default_rng(0).normal(0, 4, img.shape)
    Image.fromarray(np.clip(img + noise, 0, 255).astype(np.uint8)).save(path, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="6000x4000")
    ap.add_argument("--format", default="same", help="output format (same: the input's, JPEG)")
    ap.add_argument("--max-memory", default="1024")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "big.jpg"
        test_photo(w, h, src)
        cmd = ["/usr/bin/time", "-v", "snapsr", "upscale", str(src), "-o", str(Path(d) / "out"), "-q",
               "--format", args.format, "--max-memory", args.max_memory]  # fmt: skip
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(f"snapsr upscale failed:\n{res.stderr[-2000:]}")
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))
        out = next((Path(d) / "out").iterdir())
        with Image.open(out) as im:
            size = im.size
        print(f"input {w}x{h} ({w * h / 1e6:.0f} MP) -> {out.suffix} {size[0]}x{size[1]} "
              f"({size[0] * size[1] / 1e6:.0f} MP, {out.stat().st_size / 1e6:.0f} MB)")  # fmt: skip
        print(f"peak resident memory {rss_kb / 2**20:.2f} GiB, wall {wall:.0f} s (--max-memory {args.max_memory})")


if __name__ == "__main__":
    main()
