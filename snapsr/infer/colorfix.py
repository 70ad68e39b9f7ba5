"""Colour correction of an SR output towards its input (as StableSR and SUPIR offer).

``adain`` matches each channel's mean and standard deviation to ``up(LR)``;
``wavelet`` keeps the output's high frequencies and takes the low ones from ``up(LR)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adain(sr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    dims = (-2, -1)
    mu_s, sd_s = sr.mean(dims, keepdim=True), sr.std(dims, keepdim=True).clamp_min(1e-5)
    mu_r, sd_r = ref.mean(dims, keepdim=True), ref.std(dims, keepdim=True)
    return (sr - mu_s) / sd_s * sd_r + mu_r


def _blur(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """The a-trous B3-spline-free wavelet's low-pass: a [1,2,1]/4 kernel dilated by ``dilation``."""
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device) / 4
    k2 = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 3, 3)
    pad = dilation
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    return F.conv2d(F.pad(x, (pad,) * 4, mode=mode), k2, dilation=dilation, groups=x.shape[1])


def low_pass(x: torch.Tensor, levels: int = 5) -> torch.Tensor:
    for i in range(levels):
        x = _blur(x, 2**i)
    return x


def wavelet(sr: torch.Tensor, ref: torch.Tensor, levels: int = 5) -> torch.Tensor:
    return sr - low_pass(sr, levels) + low_pass(ref, levels)


METHODS = {"none": None, "adain": adain, "wavelet": wavelet}


def apply(method: str, sr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    if method not in METHODS:
        raise ValueError(f"unknown colorfix {method!r}; use none, wavelet or adain")
    fn = METHODS[method]
    return sr if fn is None else fn(sr, ref)
