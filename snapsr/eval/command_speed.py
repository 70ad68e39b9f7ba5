"""Whole-command speed: ``snapsr upscale`` as a user runs it, beside Real-ESRGAN x4plus and the bare import.

Each row is a fresh process that starts, imports, loads its weights, reads the photos, upscales them
and writes PNGs; the median of ``repeats`` runs of each, all in one call, so the ratios compare like
with like on whatever CPU this is. ``python -c "import torch"`` is the floor any PyTorch command pays.

Cases: ``two``, two photos of ``size`` (centre crops of the first two images of ``photos``, or of
the bundled example enlarged when there are fewer); ``small``, a folder of fourteen 128x128 crops
of them (where start-up dominates); ``large``, one 1536x1024 photo.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from snapsr.infer.device import cpu_name

CASES = ("two", "small", "large")
EXAMPLE = Path(__file__).parents[1] / "assets" / "example.jpg"

_ESRGAN = """
import sys, numpy as np
from PIL import Image
from snapsr.eval.peers import RealESRGANncnn
net = RealESRGANncnn()
for src in sys.argv[2:]:
    x = np.asarray(Image.open(src).convert("RGB"), np.float32).transpose(2, 0, 1) / 255
    y = (net(x).clip(0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    Image.fromarray(y).save(f"{sys.argv[1]}/{src.rsplit('/', 1)[-1][:-4]}_esrgan.png")
"""

SNAPSR_ROW = "snapsr upscale (whole command)"
ESRGAN_ROW = "Real-ESRGAN x4plus (ncnn fp32, whole process)"
TORCH_ROW = "python -c 'import torch' (the floor)"


def photos(folder: Path | None, size: tuple[int, int]) -> list[Image.Image]:
    """Two ``size`` (w, h) centre crops: of the first two images in ``folder``, else of the example."""
    from snapsr.infer.imageio import list_files

    files = list_files(folder)[:2] if folder is not None and folder.is_dir() else []
    if len(files) < 2:
        files = [EXAMPLE, EXAMPLE]
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


def _timed(cmds: dict[str, list[str]], repeats: int) -> dict[str, float]:
    """Median seconds of each command, run in turns (one of each per round) so that a slow spell of the
    machine falls on all of them alike: the ratios are what this measures."""
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(repeats):
        for label, cmd in cmds.items():
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            times[label].append(time.perf_counter() - t)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"{label} failed: {tail[0].removeprefix('Error: ')}")
    return {label: statistics.median(ts) for label, ts in times.items()}


def command_speed(
    case: str = "two",
    photos_dir: Path | None = None,
    size: tuple[int, int] = (512, 384),
    repeats: int = 3,
    weights: str | None = None,
    extra_args: tuple[str, ...] = (),
    peer: bool = True,
    also: tuple[str, ...] = (),
) -> dict:
    """Median seconds of the whole ``snapsr upscale`` command on ``case``'s photos (and with each of the
    weights in ``also``: other tiers, timed in the same run), of a process doing the same with
    Real-ESRGAN x4plus (``peer``), and of importing torch, each a fresh process."""
    if case not in CASES:
        raise ValueError(f"case must be one of {', '.join(CASES)}; got {case!r}")
    w, h = (1536, 1024) if case == "large" else size
    ims = photos(photos_dir, (w, h))
    if case == "small":
        ims = [im.crop((x, y, x + 128, y + 128)) for im in ims for x, y in _grid(im.size, 7)]
        w = h = 128
    elif case == "large":
        ims = ims[:1]
    with tempfile.TemporaryDirectory() as d:
        srcs = []
        for i, im in enumerate(ims):
            srcs.append(f"{d}/photo{i:02d}.png")
            im.save(srcs[-1])
        snap = [sys.executable, "-m", "snapsr", "upscale", *srcs, "-o", f"{d}/out", "--overwrite", "--quiet"]
        snap += [*(["--weights", str(weights)] if weights else []), *extra_args]
        ours = {SNAPSR_ROW: snap}
        for other in also:
            ours[also_row(other)] = [*snap[: snap.index("--overwrite")], "--overwrite", "--quiet", "--weights", other]
            ours[also_row(other)] += list(extra_args)
        ours[TORCH_ROW] = [sys.executable, "-c", "import torch"]
        seconds = _timed(ours, repeats)  # the import in the same rounds as our commands: their ratio
        if peer:
            seconds |= _timed({ESRGAN_ROW: [sys.executable, "-c", _ESRGAN, d, *srcs]}, repeats)
    return {
        "cpu": cpu_name(),
        "case": case,
        "images": len(ims),
        "size": f"{w}x{h}",
        "repeats": repeats,
        "weights": weights or "bundled default",
        "seconds": seconds,
    }


def also_row(weights: str) -> str:
    return f"snapsr upscale --weights {weights} (whole command)"


def format_result(r: dict) -> str:
    s = r["seconds"]
    lines = [
        f"CPU: {r['cpu']}; {r['images']} {r['size']} photo(s) ({r['case']}); median of {r['repeats']} runs, "
        f"each a fresh process, ours and the import in turns; weights: {r['weights']}",
        "| command | seconds |",
        "|---|---:|",
        *(f"| {k} | {v:.2f} |" for k, v in s.items()),
    ]
    out = []
    for row in (k for k in s if k.startswith("snapsr upscale")):
        who = "snapsr" if row == SNAPSR_ROW else row.removesuffix(" (whole command)")
        ratio = [f"it costs {s[row] / s[TORCH_ROW]:.2f}x importing torch"]
        if ESRGAN_ROW in s:
            ratio.insert(0, f"{who} is {s[ESRGAN_ROW] / s[row]:.1f}x faster than Real-ESRGAN x4plus")
        out.append("; ".join(ratio))
    return "\n".join(lines + out)
