"""Pixel and structure losses: Charbonnier and Sobel edge maps (GTASR's structural terms)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``mean sqrt((a - b)^2 + eps^2) - eps``: L1-like, smooth at 0, and exactly 0 where a == b."""
    d = (a.float() - b.float()).pow(2)
    return (d + eps * eps).sqrt().mean() - eps


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def sobel(x: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel gradients ``(B, 2C, H, W)`` (x then y), replicate-padded to keep the size."""
    c = x.shape[1]
    k = torch.stack([_SOBEL_X, _SOBEL_X.t()]).unsqueeze(1).to(x.device, torch.float32)  # (2,1,3,3)
    k = k.repeat(c, 1, 1, 1)  # (2C,1,3,3): each channel gives its x and y gradient
    return F.conv2d(F.pad(x.float(), (1, 1, 1, 1), mode="replicate"), k, groups=c)


def edge_loss(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier distance between the Sobel gradient fields of ``a`` and ``b``."""
    return charbonnier(sobel(a), sobel(b), eps)
