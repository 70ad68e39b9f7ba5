"""Learned image-quality metrics, each from published weights on the user's disk (nothing is
downloaded): full-reference LPIPS and DISTS (``snapsr.eval.perceptual``), no-reference MUSIQ, MANIQA and
CLIP-IQA (one module each here). A small explicit registry maps the names ``snapsr eval --learned``
takes to their loaders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from snapsr.eval.iqa.files import Folders, default_folders


@dataclass(frozen=True)
class Metric:
    load: Callable[[Folders], nn.Module]  # folders -> module scoring (B,3,H,W) in [0, 1]
    reference: bool  # needs the HR image (full-reference)
    higher_is_better: bool


def _lpips(folders):
    from snapsr.eval.perceptual import LPIPS

    return LPIPS.from_files(folders)


def _dists(folders):
    from snapsr.eval.perceptual import DISTS

    return DISTS.from_files(folders)


def _musiq(folders):
    from snapsr.eval.iqa.musiq import MUSIQ

    return MUSIQ.from_files(folders)


def _maniqa(name):
    def load(folders):
        from snapsr.eval.iqa.maniqa import MANIQA

        return MANIQA.from_files(folders, name)

    return load


def _clipiqa(folders):
    from snapsr.eval.iqa.clipiqa import CLIPIQA

    return CLIPIQA.from_files(folders)


METRICS: dict[str, Metric] = {
    "lpips": Metric(_lpips, reference=True, higher_is_better=False),
    "dists": Metric(_dists, reference=True, higher_is_better=False),
    "musiq": Metric(_musiq, reference=False, higher_is_better=True),
    "maniqa": Metric(_maniqa("maniqa"), reference=False, higher_is_better=True),
    "maniqa-pipal": Metric(_maniqa("maniqa-pipal"), reference=False, higher_is_better=True),
    "clipiqa": Metric(_clipiqa, reference=False, higher_is_better=True),
}


def parse_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown learned metric(s) {unknown}; available: {', '.join(METRICS)}")
    return names


def learned_metrics(folder: Path | None, names: Sequence[str], device: str | torch.device = "cpu"):
    """``(sr, hr or None) -> {name: value}`` for uint8 ``HxWx3`` arrays, computed in float32 on ``device``.
    Weights come from ``folder`` or, when it is None, from pyiqa's and CLIP's download caches
    (``files.default_folders``)."""
    if folder is not None and not Path(folder).is_dir():
        raise FileNotFoundError(f"--metric-weights: no such folder {folder}")
    folders = [Path(folder)] if folder is not None else default_folders()
    nets = {n: METRICS[n].load(folders).to(device) for n in names}

    def score(sr: np.ndarray, hr: np.ndarray | None) -> dict[str, float]:
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(2, 0, 1)[None].float() / 255

        x, y = t(sr), (t(hr) if hr is not None else None)  # once per image, not once per metric
        out = {}
        with torch.no_grad():
            for n, net in nets.items():
                if METRICS[n].reference:
                    if y is not None:
                        out[n] = float(net(x, y)[0])
                else:
                    out[n] = float(net(x)[0])
        return out

    return score
