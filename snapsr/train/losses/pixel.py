"""Pixel and structure losses: Charbonnier and Sobel edge maps (GTASR's structural terms)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3, *, per_image: bool = False) -> torch.Tensor:
    """``mean sqrt((a - b)^2 + eps^2) - eps``: L1-like, smooth at 0, and exactly 0 where a == b.

    ``per_image``: one mean per image ``(B,)`` instead of one over the batch.
    """
    d = ((a.float() - b.float()).pow(2) + eps * eps).sqrt() - eps
    return d.flatten(1).mean(1) if per_image else d.mean()


def dial_pixel_loss(
    out: torch.Tensor,
    hr: torch.Tensor,
    t: torch.Tensor,
    *,
    at_1: float = 1.0,
    w_lowpass: float = 0.0,
    lowpass: int = 4,
    eps: float = 1e-3,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pixel term of a dial student, loosened towards the realistic end.

    Each image's Charbonnier distance to the ground truth is weighted ``1 - (1 - at_1) t``: full
    weight at the faithful end, ``at_1`` at the realistic one, where an adversarial term is left
    free to invent texture. ``w_lowpass * t`` adds the distance between the two images
    average-pooled by ``lowpass``: however much the realistic end invents, it keeps the ground
    truth's colours and coarse structure (what a downscale of the output would show).
    ``weight`` ``(B,)`` scales the full-resolution term per image (an anchor taking over from it).
    """
    t = t.float().reshape(-1)
    w = 1 - (1 - at_1) * t
    if weight is not None:
        w = w * weight.float().reshape(-1)
    loss = (w * charbonnier(out, hr, eps, per_image=True)).mean()
    if w_lowpass > 0:
        pool = lambda x: F.avg_pool2d(x.float(), lowpass)  # noqa: E731
        loss = loss + w_lowpass * (t * charbonnier(pool(out), pool(hr), eps, per_image=True)).mean()
    return loss


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


def phase_pattern_loss(out: torch.Tensor, hr: torch.Tensor, period: int = 4) -> torch.Tensor:
    """The grid a pixel-shuffle upsampler (or a GAN exploiting it) lays over an image: the mean of
    ``out - hr`` at each of the ``period x period`` sub-pixel phases, over the whole crop, less its
    mean. Texture and noise average out over the crop; a pattern repeated every ``period`` pixels
    does not. Mean absolute value over the phases, per image then over the batch."""
    d = out.float() - hr.float()
    B, C, H, W = d.shape
    h, w = H // period * period, W // period * period
    pattern = d[..., :h, :w].reshape(B, C, h // period, period, w // period, period).mean((2, 4))
    return (pattern - pattern.mean((-2, -1), keepdim=True)).abs().mean()
