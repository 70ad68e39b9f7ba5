"""Whole-command speed: ``snapsr upscale`` on two photos against Real-ESRGAN x4plus on the same photos,
each as a fresh process that starts, loads its weights, reads, upscales and writes PNGs, timed in one run,
beside ``python -c "import torch"`` (the floor any PyTorch command pays).

    python benchmarks/cli_speed.py [--case two|small|large] [--photos DIR] [--size 512x384] [--repeats 3] [--json FILE]

Cases: ``two`` (default): two photos of ``--size``, centre crops of the first two images of DIR (default:
the validation photos; without them, the bundled example enlarged); ``small``: a folder of fourteen
128x128 crops of them (where start-up dominates); ``large``: one 1536x1024 photo. Pause background
training while this runs: both share the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from snapsr.infer.device import cpu_name

ESRGAN = """
import sys, numpy as np
from PIL import Image
from snapsr.eval.peers import RealESRGANncnn
net = RealESRGANncnn()
for src in sys.argv[2:]:
    x = np.asarray(Image.open(src).convert("RGB"), np.float32).transpose(2, 0, 1) / 255
    y = (net(x).clip(0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    Image.fromarray(y).save(f"{sys.argv[1]}/{src.rsplit('/', 1)[-1][:-4]}_esrgan.png")
"""


def photos(folder: Path, size: tuple[int, int]) -> list[Image.Image]:
    from snapsr.infer.imageio import list_files

    files = list_files(folder)[:2] if folder.is_dir() else []
    if len(files) < 2:
        files = [Path(__file__).parents[1] / "snapsr" / "assets" / "example.jpg"] * 2
    out = []
    for f in files:
        im = Image.open(f).convert("RGB")
        k = max(size[0] / im.width, size[1] / im.height, 1.0)
        im = im.resize((round(im.width * k), round(im.height * k)), Image.Resampling.LANCZOS) if k > 1 else im
        x, y = (im.width - size[0]) // 2, (im.height - size[1]) // 2
        out.append(im.crop((x, y, x + size[0], y + size[1])))
    return out


def _grid(size: tuple[int, int], n: int) -> list[tuple[int, int]]:
    """``n`` top-left corners of 128x128 crops spread over an image of ``size``."""
    w, h = size
    return [((w - 128) * i // max(n - 1, 1), (h - 128) * ((i * 3) % n) // max(n - 1, 1)) for i in range(n)]


def timed(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="../shared/data/photos/val")
    ap.add_argument("--size", default="512x384")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--case", default="two", choices=["two", "small", "large"])
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    if a.case == "large":
        w, h = 1536, 1024
    with tempfile.TemporaryDirectory() as d:
        srcs = []
        ims = photos(Path(a.photos), (w, h))
        if a.case == "small":
            ims = [im.crop((x, y, x + 128, y + 128)) for im in ims for x, y in _grid(im.size, 7)]
            w = h = 128
        elif a.case == "large":
            ims = ims[:1]
        for i, im in enumerate(ims):
            srcs.append(f"{d}/photo{i:02d}.png")
            im.save(srcs[-1])
        snap = [sys.executable, "-m", "snapsr", "upscale", *srcs, "-o", f"{d}/out", "--overwrite", "--quiet"]
        snap += ["--weights", a.weights] if a.weights else []
        rows = {
            "snapsr upscale (bundled default, whole command)": timed(snap, a.repeats),
            "Real-ESRGAN x4plus (ncnn fp32, whole process)": timed([sys.executable, "-c", ESRGAN, d, *srcs], a.repeats),
            "python -c 'import torch' (the floor)": timed([sys.executable, "-c", "import torch"], a.repeats),
        }
    snap_s, esr_s, torch_s = rows.values()
    print(f"CPU: {cpu_name()}; {len(srcs)} {w}x{h} photo(s); median of {a.repeats} runs, each a fresh process")
    print("| command | seconds |\n|---|---:|")
    for k, v in rows.items():
        print(f"| {k} | {v:.2f} |")
    print(
        f"snapsr is {esr_s / snap_s:.1f}x faster than Real-ESRGAN x4plus; "
        f"it costs {snap_s / torch_s:.2f}x importing torch"
    )
    if a.json:
        info = {"cpu": cpu_name(), "case": a.case, "images": len(srcs), "size": f"{w}x{h}", "seconds": rows}
        Path(a.json).write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
