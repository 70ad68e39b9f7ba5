"""JPEG (baseline, 4:2:0) on tensors: our own implementation of the codec's lossy part."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_Q_LUMA = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float32,
)
_Q_CHROMA = torch.full((8, 8), 99.0)
_Q_CHROMA[:4, :4] = torch.tensor(
    [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], dtype=torch.float32
)


def _dct_matrix() -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.float()


_DCT = _dct_matrix()


def _quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's quality scaling of the standard tables, per image: ``(B,8,8)`` each."""
    q = quality.clamp(1, 100)
    s = torch.where(q < 50, 5000 / q, 200 - 2 * q).view(-1, 1, 1)
    luma = ((_Q_LUMA * s + 50) / 100).floor().clamp(1, 255)
    chroma = ((_Q_CHROMA * s + 50) / 100).floor().clamp(1, 255)
    return luma, chroma


def _code_plane(p: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """DCT -> quantise -> dequantise -> IDCT of one plane ``(B,H,W)``, H, W multiples of 8."""
    B, H, W = p.shape
    blocks = p.reshape(B, H // 8, 8, W // 8, 8).permute(0, 1, 3, 2, 4)
    d = _DCT.to(p)
    coef = d @ blocks @ d.T
    t = table.to(p).view(B, 1, 1, 8, 8)
    coef = torch.round(coef / t) * t
    blocks = d.T @ coef @ d
    return blocks.permute(0, 1, 3, 2, 4).reshape(B, H, W)


def jpeg(img: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Compress and decompress ``img (B,3,H,W)`` in [0, 1] at per-image ``quality (B,)``."""
    B, C, H, W = img.shape
    x = F.pad(img.float(), (0, (-W) % 16, 0, (-H) % 16), mode="replicate") * 255
    r, g_, b = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g_ + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g_ + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g_ - 0.081312 * b + 128
    luma_t, chroma_t = _quant_tables(quality.float().cpu())
    y = _code_plane(y - 128, luma_t) + 128
    sub = lambda c: F.avg_pool2d(c.unsqueeze(1), 2).squeeze(1)  # noqa: E731
    up = lambda c: F.interpolate(c.unsqueeze(1), scale_factor=2, mode="bilinear", align_corners=False).squeeze(1)  # noqa: E731
    cb = up(_code_plane(sub(cb) - 128, chroma_t) + 128) - 128
    cr = up(_code_plane(sub(cr) - 128, chroma_t) + 128) - 128
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    out = (out / 255).clamp(0, 1)[..., :H, :W]
    return out.to(img.dtype)
