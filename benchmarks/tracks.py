"""The three evaluation tracks of the quality comparison, from a folder of held-out photos:

  degraded/  512-pixel HR crops (several per photo, spread over it) under Real-ESRGAN's second-order
             degradations at x4, each crop under several degradation seeds;
  clean/     the same crops, downscaled x4 by plain bicubic (a clean photo must be sharpened, not smeared);
  real/      whole photos as people share them, without a reference: downscaled to about 512 pixels
             wide by Pillow's resampling and saved as JPEG (quality 80), plus the bundled example.

    python benchmarks/tracks.py ../shared/data/photos/val -o data/tracks [--crops 4 --seeds 0,1,2]

Deterministic: the same photos, crops and seeds give the same files.
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from snapsr.data import stream_seed
from snapsr.degrade import DegradeConfig, bicubic_down, degrade
from snapsr.infer.imageio import list_files, read_rgb, to_tensor
from snapsr.infer.imagewrite import save_png


def track_degradation(hr: torch.Tensor, name: str, seed: int, cfg: DegradeConfig | None = None) -> torch.Tensor:
    """The degraded track's LR of crop ``name`` under degradation ``seed``: the same draws every time
    (``cfg``: the track's model, ``DegradeConfig()``, unless given, e.g. its noise-free twin)."""
    g = torch.Generator().manual_seed(stream_seed("track", seed, name))
    return degrade(hr, 4, cfg or DegradeConfig(), g)


def crop_positions(h: int, w: int, size: int, n: int) -> list[tuple[int, int]]:
    """``n`` crop corners spread over the image: a grid of about sqrt(n) x sqrt(n), centred cells."""
    rows = max(1, int(round(n**0.5)))
    cols = max(1, -(-n // rows))
    ys = np.linspace(0, h - size, rows + 2)[1:-1] if rows > 1 else [(h - size) / 2]
    xs = np.linspace(0, w - size, cols + 2)[1:-1] if cols > 1 else [(w - size) / 2]
    return [(int(y), int(x)) for y in ys for x in xs][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos")
    ap.add_argument("-o", "--out", default="data/tracks")
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--crops", type=int, default=4, help="crops per photo")
    ap.add_argument("--seeds", default="0,1,2", help="degradation seeds per crop (degraded track)")
    ap.add_argument("--real-width", type=int, default=512)
    a = ap.parse_args()
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    seeds = [int(s) for s in a.seeds.split(",")]
    n = 0
    for path in list_files(a.photos):
        img = read_rgb(path)
        h, w = img.shape[:2]
        for k, (y, x) in enumerate(crop_positions(h, w, a.crop, a.crops)):
            hr = to_tensor(img[y : y + a.crop, x : x + a.crop]).unsqueeze(0)
            name = f"{path.stem}_c{k}"
            save_png(hr[0], out / "clean" / "hr" / f"{name}.png")
            save_png(bicubic_down(hr, 4)[0], out / "clean" / "lr" / f"{name}.png")
            for s in seeds:
                save_png(hr[0], out / "degraded" / "hr" / f"{name}_s{s}.png")
                save_png(track_degradation(hr, name, s)[0], out / "degraded" / "lr" / f"{name}_s{s}.png")
            n += 1
        small = Image.fromarray(img).resize((a.real_width, round(h * a.real_width / w)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=80)
        (out / "real" / "lr").mkdir(parents=True, exist_ok=True)
        (out / "real" / "lr" / f"{path.stem}.jpg").write_bytes(buf.getvalue())
    shutil.copy(Path(__file__).parents[1] / "snapsr" / "assets" / "example.jpg", out / "real" / "lr" / "example.jpg")
    print(f"wrote {n} crops x {len(seeds)} seeds (degraded), {n} (clean), and the real photos to {out}")


if __name__ == "__main__":
    main()
