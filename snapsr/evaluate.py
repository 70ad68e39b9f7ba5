"""Scoring SR results against HR images, matched by file name (BasicSR conventions)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from snapsr.imageio import ImageReadError, list_files, read_rgb, to_tensor
from snapsr.metrics import hf_energy_ratio, psnr, ssim, to_uint8_hwc
from snapsr.niqe import niqe


@dataclass
class Scores:
    method: str
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)

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
        # NIQE needs one 96x96 block after the crop; smaller images have no NIQE (NaN)
        "niqe": niqe(sr, crop_border) if min(sr.shape[:2]) - 2 * crop_border >= 96 else float("nan"),
    }


def pair_by_stem(a_dir: Path, b_dir: Path) -> list[tuple[Path, Path]]:
    """Files of ``a_dir`` and ``b_dir`` with the same stem (an SR suffix such as ``_x4`` is ignored)."""
    b = {p.stem: p for p in list_files(b_dir)}
    pairs = []
    for p in list_files(a_dir):
        stem = p.stem
        for key in (stem, stem.rsplit("_", 1)[0]):
            if key in b:
                pairs.append((p, b[key]))
                break
    if not pairs:
        raise ValueError(f"no file in {a_dir} matches a file name in {b_dir}")
    return pairs


def score_dirs(sr_dir: Path, hr_dir: Path, crop_border: int, scale: int, method: str = "sr") -> Scores:
    out = Scores(method)
    for sr_p, hr_p in pair_by_stem(sr_dir, hr_dir):
        try:
            out.per_image[hr_p.stem] = full_reference(read_rgb(sr_p), read_rgb(hr_p), crop_border, scale)
        except (ImageReadError, ValueError) as e:
            print(f"skipping {sr_p}: {e}", file=sys.stderr)
    return out


@torch.no_grad()
def score_model(
    run,  # callable: lr (1,3,h,w) float, name -> sr (1,3,H,W) float
    lr_dir: Path,
    hr_dir: Path,
    crop_border: int,
    scale: int,
    method: str,
) -> Scores:
    out = Scores(method)
    for lr_p, hr_p in pair_by_stem(lr_dir, hr_dir):
        lr = to_tensor(read_rgb(lr_p)).unsqueeze(0)
        hr = read_rgb(hr_p)
        sr = to_uint8_hwc(run(lr, lr_p.stem)[0])
        if sr.shape != hr.shape:
            raise ValueError(f"{lr_p}: SR size {sr.shape} differs from HR size {hr.shape}")
        out.per_image[hr_p.stem] = full_reference(sr, hr, crop_border, scale)
    return out


def format_table(results: list[Scores], keys=("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "hf_ratio", "niqe")) -> str:
    """A Markdown table of the mean scores, one row per method."""
    lines = ["| method | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for r in results:
        m = r.mean()
        if not m:
            lines.append(f"| {r.method} |" + " |" * len(keys))
            continue
        lines.append(
            f"| {r.method} | "
            + " | ".join(
                f"{m[k]:.4f}" if "ssim" in k else f"{m[k]:.3f}" if k in ("hf_ratio", "niqe") else f"{m[k]:.2f}"
                for k in keys
            )
            + " |"
        )
    return "\n".join(lines)
