"""``snapsr degrade``: an LR/HR evaluation set from a folder of HR images."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("hr_dir", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(), help="Writes OUTPUT/hr and OUTPUT/lr.")
@click.option("--scale", default=4, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--mode", default="realesrgan", show_default=True, type=click.Choice(["realesrgan", "bicubic"]))
@click.option("--max-size", default=0, type=int, help="Centre-crop HR images to at most this side (0: whole).")
def degrade(hr_dir, output, scale, seed, mode, max_size):
    """Write an LR/HR evaluation set from a folder of HR images (reproducible under --seed)."""
    import torch

    from snapsr.data import stream_seed
    from snapsr.degrade import DegradeConfig
    from snapsr.degrade import degrade as degrade_fn
    from snapsr.infer.imageio import ImageReadError, list_files, read_rgb, to_tensor
    from snapsr.infer.imagewrite import save_png

    out = Path(output)
    (out / "hr").mkdir(parents=True, exist_ok=True)
    (out / "lr").mkdir(parents=True, exist_ok=True)
    cfg = DegradeConfig(mode=mode)
    failed = 0
    files = list_files(hr_dir)
    for path in files:
        try:
            img = read_rgb(path)
        except ImageReadError as e:
            click.echo(f"error: {e}", err=True)
            failed += 1
            continue
        h, w = img.shape[:2]
        if max_size:
            h2, w2 = min(h, max_size), min(w, max_size)
            y, x = (h - h2) // 2, (w - w2) // 2
            img, h, w = img[y : y + h2, x : x + w2], h2, w2
        img = img[: h - h % scale, : w - w % scale]
        hr = to_tensor(img).unsqueeze(0)
        # one stream per file name: the set does not change when other files come or go
        g = torch.Generator().manual_seed(stream_seed("degrade", seed, path.name))
        lr = degrade_fn(hr, scale, cfg, g)
        save_png(hr[0], out / "hr" / f"{path.stem}.png")
        save_png(lr[0], out / "lr" / f"{path.stem}.png")
    click.echo(f"wrote {len(files) - failed} LR/HR pairs to {out} ({failed} failed)")
    if failed:
        sys.exit(1)
