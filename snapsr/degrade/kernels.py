"""Blur kernels (Gaussian, generalized Gaussian, plateau, 2-D sinc), all normalised and centred
in a ``size x size`` grid, and per-image filtering of a batch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snapsr.degrade.config import KERNEL_TYPES, DegradeConfig
from snapsr.degrade.draws import choice, odd_size, uniform


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(size, dtype=torch.float64) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return xx, yy


def _quad_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """``x^T Sigma^-1 x`` over the grid, Sigma the rotated covariance."""
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float = 1.0) -> torch.Tensor:
    """(Generalized) Gaussian: ``exp(-0.5 * q^beta)``; beta = 1 is the ordinary Gaussian."""
    k = torch.exp(-0.5 * _quad_form(size, sigma_x, sigma_y, theta) ** beta)
    return (k / k.sum()).float()


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> torch.Tensor:
    k = 1.0 / (1.0 + _quad_form(size, sigma_x, sigma_y, theta) ** beta)
    return (k / k.sum()).float()


def sinc_kernel(size: int, omega_c: float) -> torch.Tensor:
    """Circular low-pass (2-D sinc) with cutoff ``omega_c``: ringing and overshoot artefacts."""
    xx, yy = _grid(size)
    r = torch.sqrt(xx**2 + yy**2)
    safe = torch.where(r == 0, torch.ones_like(r), r)
    k = omega_c * torch.special.bessel_j1(omega_c * safe) / (2 * math.pi * safe)
    k = torch.where(r == 0, torch.full_like(r, omega_c**2 / (4 * math.pi)), k)
    return (k / k.sum()).float()


def pad_kernel(k: torch.Tensor, size: int) -> torch.Tensor:
    p = (size - k.shape[-1]) // 2
    return F.pad(k, (p, p, p, p))


def random_kernel(g: torch.Generator, cfg: DegradeConfig, second: bool) -> torch.Tensor:
    """One blur kernel of the first or second degradation, padded to the largest size."""
    lo, hi = cfg.kernel_size_range
    size = odd_size(g, lo, hi)
    sinc_p = cfg.sinc_prob2 if second else cfg.sinc_prob
    if uniform(g, 0, 1) < sinc_p:
        omega = uniform(g, math.pi / 3, math.pi) if size < 13 else uniform(g, math.pi / 5, math.pi)
        return pad_kernel(sinc_kernel(size, omega), hi)
    probs = cfg.kernel_prob2 if second else cfg.kernel_prob
    sigma = cfg.blur_sigma2 if second else cfg.blur_sigma
    betag = cfg.betag_range2 if second else cfg.betag_range
    betap = cfg.betap_range2 if second else cfg.betap_range
    kind = KERNEL_TYPES[choice(g, len(KERNEL_TYPES), probs)]
    sx = uniform(g, *sigma)
    if kind.endswith("aniso"):
        sy, theta = uniform(g, *sigma), uniform(g, -math.pi, math.pi)
    else:
        sy, theta = sx, 0.0
    if kind.startswith("generalized"):
        beta = uniform(g, betag[0], 1) if uniform(g, 0, 1) < 0.5 else uniform(g, 1, betag[1])
        k = gaussian_kernel(size, sx, sy, theta, beta)
    elif kind.startswith("plateau"):
        beta = uniform(g, betap[0], 1) if uniform(g, 0, 1) < 0.5 else uniform(g, 1, betap[1])
        k = plateau_kernel(size, sx, sy, theta, beta)
    else:
        k = gaussian_kernel(size, sx, sy, theta)
    return pad_kernel(k, hi)


def filter2d(img: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image of ``img (B,C,H,W)`` with its own kernel from ``kernels (B,k,k)``."""
    B, C, H, W = img.shape
    k = kernels.shape[-1]
    x = F.pad(img, (k // 2,) * 4, mode="reflect" if min(H, W) > k // 2 else "replicate")
    w = kernels.to(img).repeat_interleave(C, dim=0).unsqueeze(1)
    out = F.conv2d(x.reshape(1, B * C, *x.shape[-2:]), w, groups=B * C)
    return out.reshape(B, C, H, W)
