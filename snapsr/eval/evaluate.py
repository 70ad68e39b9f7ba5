"""Scoring SR results against HR images, matched by file name (BasicSR conventions)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from snapsr.eval.metrics import hf_energy_ratio, psnr, spikes_per_mp, ssim, to_uint8_hwc
from snapsr.eval.niqe import niqe
from snapsr.infer.imageio import ImageReadError, list_files, read_rgb, to_tensor


@dataclass
class Scores:
    method: str
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    series: str | None = None  # a dial sweep's name ("euler 4 steps"), for the plot
    realism: float | None = None

    def mean(self) -> dict[str, float]:
        keys = next(iter(self.per_image.values())).keys() if self.per_image else []
        return {k: float(np.mean([v[k] for v in self.per_image.values()])) for k in keys}


def full_reference(sr: np.ndarray, hr: np.ndarray, crop_border: int, scale: int) -> dict[str, float]:
    return {
        "psnr_y": psnr(sr, hr, crop_border, test_y=True),
        "ssim_y": ssim(sr, hr, crop_border, test_y=True),
        "psnr_rgb": psnr(sr, hr, crop_border),
        "ssim_rgb": ssim(sr, hr, crop_border),
        "hf_ratio": hf_energy_ratio(sr, hr, scale),
        "niqe": no_reference_niqe(sr, crop_border),
        "spikes": spikes_per_mp(sr),
    }


def no_reference_niqe(sr: np.ndarray, crop_border: int) -> float:
    # NIQE fits a covariance over 96x96 blocks: with fewer than two after the crop it is undefined (NaN)
    h, w = (d - 2 * crop_border for d in sr.shape[:2])
    return niqe(sr, crop_border) if (h // 96) * (w // 96) >= 2 else float("nan")


def score_image(sr: np.ndarray, hr: np.ndarray | None, crop_border: int, scale: int, extra=None) -> dict[str, float]:
    """Every metric that applies: full-reference ones only with ``hr``; ``extra(sr, hr)`` adds learned ones."""
    if hr is not None and sr.shape != hr.shape:
        raise ValueError(f"SR size {sr.shape} differs from HR size {hr.shape}")
    if hr is None:
        base = {"niqe": no_reference_niqe(sr, crop_border), "spikes": spikes_per_mp(sr)}
    else:
        base = full_reference(sr, hr, crop_border, scale)
    return {**base, **(extra(sr, hr) if extra else {})}


_ROLE_SUFFIX = re.compile(r"(?:[_-]?(?:x\d+(?:\.\d+)?|hr|lr\d*|sr|gt|lq))$", re.IGNORECASE)


def pair_key(stem: str) -> str:
    """A file stem without its role/scale suffixes, so that the usual layouts pair up:
    DIV2K ``0801x4`` / ``0801``, RealSR ``Canon_001_LR4`` / ``Canon_001_HR``, DRealSR ``a_x4`` /
    ``a_x1``, and snapsr's own outputs ``photo_x4`` / ``photo``."""
    key, prev = stem, None
    while prev != key:
        prev, key = key, _ROLE_SUFFIX.sub("", key)
    return key or stem  # a name that is all suffix ("HR") stays itself


def pair_by_stem(a_dir: Path, b_dir: Path) -> list[tuple[Path, Path]]:
    """Each file of ``a_dir`` with its file in ``b_dir``, strictly: the same sub-folder, and the same
    stem, or failing that the same stem once role and scale suffixes are removed (``pair_key``).
    Two candidates, or a file of ``a_dir`` without one, is a ``ValueError`` that names them: a mean
    over fewer images, or over wrong pairs, is another benchmark."""

    def index(root: Path) -> tuple[dict, dict]:
        exact: dict[Path, list[Path]] = {}
        loose: dict[Path, list[Path]] = {}
        for p in list_files(root):
            rel = p.relative_to(root).parent
            exact.setdefault(rel / p.stem, []).append(p)
            loose.setdefault(rel / pair_key(p.stem), []).append(p)
        return exact, loose

    exact, loose = index(b_dir)
    pairs, unpaired = [], []
    for p in list_files(a_dir):
        rel = p.relative_to(a_dir).parent
        found = exact.get(rel / p.stem) or loose.get(rel / pair_key(p.stem)) or []
        if len(found) > 1:
            names = ", ".join(str(f) for f in found[:3])
            raise ValueError(f"{p}: more than one possible reference in {b_dir} ({names}); rename to pair them")
        if found:
            pairs.append((p, found[0]))
        else:
            unpaired.append(p)
    if unpaired:
        first = ", ".join(str(u) for u in unpaired[:3]) + (" ..." if len(unpaired) > 3 else "")
        raise ValueError(f"{len(unpaired)} file(s) in {a_dir} have no reference in {b_dir}: {first}")
    if not pairs:
        raise ValueError(f"no images in {a_dir}")
    return pairs


def pairs_or_files(a_dir: Path, b_dir: Path | None) -> list[tuple[Path, Path | None]]:
    """``pair_by_stem(a_dir, b_dir)``, or each file of ``a_dir`` alone when there is no ``b_dir``."""
    if b_dir is None:
        files = list_files(a_dir)
        if not files:
            raise ValueError(f"no images in {a_dir}")
        return [(p, None) for p in files]
    return pair_by_stem(a_dir, b_dir)


def score_dirs(
    sr_dir: Path, hr_dir: Path | None, crop_border: int, scale: int, method: str = "sr", extra=None
) -> Scores:
    """Score the files of ``sr_dir`` against ``hr_dir`` (or alone, no-reference metrics only, when it
    is None); ``extra(sr, hr) -> dict`` adds learned metrics."""
    out = Scores(method)
    for sr_p, hr_p in pairs_or_files(sr_dir, hr_dir):
        try:
            sr = read_rgb(sr_p)
            hr = read_rgb(hr_p) if hr_p is not None else None
            out.per_image[(hr_p or sr_p).stem] = score_image(sr, hr, crop_border, scale, extra)
        except (ImageReadError, ValueError) as e:
            raise ValueError(str(e) if str(sr_p) in str(e) else f"{sr_p}: {e}") from None
    return out


@torch.no_grad()
def score_model(
    run,  # callable: lr (1,3,h,w) float, name -> sr (1,3,H,W) float
    lr_dir: Path,
    hr_dir: Path | None,
    crop_border: int,
    scale: int,
    method: str,
    extra=None,
    keep=None,  # callable: (lr_path, sr uint8 HxWx3) -> None, sees every output once (strip crops)
) -> Scores:
    out = Scores(method)
    for lr_p, hr_p in pairs_or_files(lr_dir, hr_dir):
        try:
            lr = to_tensor(read_rgb(lr_p)).unsqueeze(0)
            hr = read_rgb(hr_p) if hr_p is not None else None
        except ImageReadError as e:
            raise ValueError(str(e)) from None
        sr = to_uint8_hwc(run(lr, lr_p.stem)[0])
        if keep is not None:
            keep(lr_p, sr)
        try:
            out.per_image[(hr_p or lr_p).stem] = score_image(sr, hr, crop_border, scale, extra)
        except ValueError as e:
            raise ValueError(f"{lr_p}: {e}") from e
    return out


def spread(items: list, n: int) -> list:
    """``n`` items evenly spaced over the list (its first and last included): strip rows from
    different photos, not three seeds of the first one."""
    if n <= 0 or not items:
        return []
    if n >= len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / max(n - 1, 1))] for i in range(n)]


def detail_window(img: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left ``(y, x)`` of the ``size`` crop with the most fine detail (gradient energy of the
    luminance, on a coarse grid of positions): a strip must show the feather, not the sky."""
    h, w = img.shape[:2]
    if h <= size and w <= size:
        return 0, 0
    y = img[..., :3].astype(np.float32).mean(-1) if img.ndim == 3 else img.astype(np.float32)
    energy = np.zeros_like(y)
    energy[:, 1:] += np.abs(np.diff(y, axis=1))
    energy[1:, :] += np.abs(np.diff(y, axis=0))
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sh, sw = min(size, h), min(size, w)
    step = max(8, size // 8)
    tops = np.arange(0, h - sh + 1, step)[:, None]
    lefts = np.arange(0, w - sw + 1, step)[None, :]
    I = integral  # noqa: N806  (box sums from the integral image)
    sums = I[tops + sh, lefts + sw] - I[tops, lefts + sw] - I[tops + sh, lefts] + I[tops, lefts]
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(tops[i, 0]), int(lefts[0, j])


@torch.no_grad()
def strip_windows(pairs: list, size: int, run) -> list[tuple[int, int]]:
    """Each pair's most detailed ``size`` window, found on its HR (on ``run``'s output without one)."""
    out = []
    for lr_p, hr_p in pairs:
        ref = read_rgb(hr_p) if hr_p is not None else to_uint8_hwc(run(to_tensor(read_rgb(lr_p)).unsqueeze(0), "")[0])
        out.append(detail_window(ref, size))
    return out


def strip_crop(img: np.ndarray, window: tuple[int, int], size: int) -> np.ndarray:
    y, x = window
    return img[y : y + size, x : x + size]


def _fmt(key: str, value: float) -> str:
    if "ssim" in key or key in ("maniqa", "maniqa-pipal", "clipiqa"):
        return f"{value:.4f}"
    if key == "spikes":
        return f"{value:.0f}"
    return f"{value:.3f}" if key in ("hf_ratio", "niqe", "lpips", "dists") else f"{value:.2f}"


def format_per_image(results: list[Scores], key: str) -> str:
    """A Markdown table of one metric per image (columns) and method (rows): means hide a smeared
    feather behind a flat sky."""
    images = list(dict.fromkeys(n for r in results for n in r.per_image))
    lines = [f"| {key} | " + " | ".join(images) + " |", "|---|" + "---:|" * len(images)]
    for r in results:
        vals = (r.per_image.get(n, {}).get(key, float("nan")) for n in images)
        lines.append(f"| {r.method} | " + " | ".join(_fmt(key, v) for v in vals) + " |")
    return "\n".join(lines)


def format_table(results: list[Scores], keys=None) -> str:
    """A Markdown table of the mean scores, one row per method."""
    if keys is None:
        present = {k for r in results for v in r.per_image.values() for k in v}
        order = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "hf_ratio", "niqe", "spikes", "lpips", "dists", "musiq")
        order += ("maniqa", "maniqa-pipal", "clipiqa")
        keys = [k for k in order if k in present] + sorted(present - set(order))
    lines = ["| method | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for r in results:
        m = r.mean()
        lines.append(f"| {r.method} | " + " | ".join(_fmt(k, m.get(k, float("nan"))) for k in keys) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# outputs


def write_outputs(results: list[Scores], out_dir: Path) -> list[Path]:
    """``results.csv`` (per-image and mean rows), ``results.json`` and ``results.md`` in ``out_dir``."""
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in results for v in r.per_image.values() for k in v})
    with open(out_dir / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "image", *keys])
        for r in results:
            for name, vals in r.per_image.items():
                w.writerow([r.method, name, *(f"{vals.get(k, float('nan')):.6f}" for k in keys)])
            m = r.mean()
            w.writerow([r.method, "mean", *(f"{m.get(k, float('nan')):.6f}" for k in keys)])
    data = {
        r.method: {"series": r.series, "realism": r.realism, "mean": r.mean(), "per_image": r.per_image}
        for r in results
    }
    (out_dir / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    present = {k for r in results for v in r.per_image.values() for k in v}
    keys = [k for k in ("psnr_y", "ssim_y", "hf_ratio", "niqe", "spikes") if k in present]
    per_image = [format_per_image(results, k) for k in keys]
    (out_dir / "results.md").write_text("\n\n".join([format_table(results), *per_image]) + "\n")
    return [out_dir / n for n in ("results.csv", "results.json", "results.md")]


def plot_pd(results: list[Scores], path: Path, x_metric: str = "niqe") -> Path:
    """The perception-distortion plane: PSNR-Y against ``x_metric`` (NIQE, LPIPS, DISTS: lower is better;
    MUSIQ, MANIQA, CLIP-IQA: higher), one line per dial sweep, one point per other method."""
    if not any("psnr_y" in v for r in results for v in r.per_image.values()):
        raise KeyError("the plot needs PSNR, which needs --hr")
    if not any(x_metric in v for r in results for v in r.per_image.values()):
        raise KeyError(f"no {x_metric} scores to plot (learned metrics need --learned)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError("the plot needs matplotlib: pip install 'snapsr[eval]'") from e
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    series: dict[str, list[Scores]] = {}
    for r in results:
        if r.series is not None:
            series.setdefault(r.series, []).append(r)
        elif r.per_image:
            m = r.mean()
            ax.scatter(m[x_metric], m["psnr_y"], marker="s", zorder=3)
            ax.annotate(r.method, (m[x_metric], m["psnr_y"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    for name, rs in series.items():
        rs = sorted(rs, key=lambda r: r.realism)
        xs, ys = [r.mean()[x_metric] for r in rs], [r.mean()["psnr_y"] for r in rs]
        ax.plot(xs, ys, marker="o", label=f"{name} (realism {rs[0].realism:g} to {rs[-1].realism:g})")
        for r, x, y in zip(rs, xs, ys):
            ax.annotate(f"{r.realism:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    from snapsr.eval.iqa import METRICS

    better = "higher" if x_metric in METRICS and METRICS[x_metric].higher_is_better else "lower"
    ax.set_xlabel(f"{x_metric.upper()} ({better}: more natural)")
    ax.set_ylabel("PSNR-Y (dB, higher: more faithful)")
    ax.set_title("Perception-distortion trade-off")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def crop_strip(columns: list[tuple[str, list[np.ndarray]]], path: Path) -> Path:
    """Crops side by side, one column per method (its label above) and one row per image, as one PNG."""
    from PIL import Image, ImageDraw

    rows = max(len(c) for _, c in columns)
    heights = [max(c[i].shape[0] for _, c in columns if i < len(c)) for i in range(rows)]
    widths = [max(x.shape[1] for x in c) for _, c in columns]
    canvas = Image.new("RGB", (sum(widths) + 4 * (len(columns) - 1), sum(heights) + 4 * (rows - 1) + 16), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for (label, crops), w in zip(columns, widths):
        draw.text((x + 2, 2), label, fill="black")
        y = 16
        for c, h in zip(crops, heights):
            canvas.paste(Image.fromarray(np.ascontiguousarray(c)), (x, y))
            y += h + 4
        x += w + 4
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
