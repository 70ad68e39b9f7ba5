"""RCOD's degradation-aware visual prompt: LR image -> tokens, plus a realism estimate.

A small strided conv encoder reads the (upsampled) LR image and returns
``tokens`` ``(B, K, D)``: a ``sqrt(K) x sqrt(K)`` grid of pooled features, which condition the
backbone in place of a text prompt (visual prompt injection, see ``PromptFiLM``), and
``level`` ``(B, 1, h, w)``: a per-region estimate in [0, 1] of the dial value that RCOD's
degradation grouping gives inputs like this one (``--realism auto``). Training the level
head on the grouping's targets is what makes the shared features degradation-aware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class PromptConfig:
    tokens: int = 16  # a square number: a 4 x 4 grid
    dim: int = 64
    channels: int = 32
    image_channels: int = 3
    input: str = "image"  # or "energy": local_energy(LR), 2 x image_channels
    # The level head: 0, one 1x1 convolution of the shared features (a linear read of how degraded a
    # region is); n > 0, n 3x3 convolutions of ``channels`` before it, for targets that are not a
    # monotone function of the degradation (the matched dial: low on a noisy sky, high on blurred grass)
    level_convs: int = 0


def _box(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, 1)


def _bin_means(n: int, side: int, like: torch.Tensor) -> torch.Tensor:
    """``(side, n)``: row ``i`` averages positions ``floor(i n / side)`` to ``ceil((i + 1) n / side) - 1``,
    the bins of ``adaptive_avg_pool``. Built from tensor ops on the size, so an ONNX graph keeps it dynamic."""
    pos = torch.arange(n, device=like.device).to(torch.float32)
    size = pos[-1:] + 1
    i = torch.arange(side, device=like.device).to(torch.float32)[:, None]
    inside = (pos >= torch.floor(i * size / side)) & (pos < torch.ceil((i + 1) * size / side))
    w = inside.to(torch.float32)
    return w / w.sum(1, keepdim=True)


def adaptive_mean(x: torch.Tensor, side: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, side)`` for float32 ``x`` ``(B, C, H, W)``, as two small matrix products
    that export to ONNX at any input size (the ATen op does not)."""
    rows, cols = _bin_means(x.shape[-2], side, x), _bin_means(x.shape[-1], side, x)
    return rows @ x @ cols.transpose(0, 1)


def local_energy(lr: torch.Tensor) -> torch.Tensor:
    """Per channel, the log of the LR's local energy in its finest band and its ratio to the next band
    ``(B, 2C, h, w)``, scaled to about unit range. Content sets the level of both; blur lowers the
    finest band against the next, noise raises it, JPEG's blocks add their own: the degradation
    shows in these numbers for any content, which a few convolutions of the image did not find."""
    b1 = _box(lr, 3)
    b2 = _box(b1, 5)
    e1 = torch.log(_box((lr - b1).square(), 3) + 1e-6)
    e2 = torch.log(_box((b1 - b2).square(), 3) + 1e-6)
    return torch.cat([(e1 - e2) / 5, e1 / 5 + 2], dim=1)


class DegradationEncoder(nn.Module):
    def __init__(self, cfg: PromptConfig, scale: int):
        super().__init__()
        side = math.isqrt(cfg.tokens)
        if side * side != cfg.tokens:
            raise ValueError(f"prompt tokens must be a square number, got {cfg.tokens}")
        self.cfg, self.scale, self.side = cfg, scale, side
        if cfg.input not in ("image", "energy"):
            raise ValueError(f"unknown encoder input {cfg.input!r}")
        c = cfg.channels
        self.features = nn.Sequential(
            nn.Conv2d(cfg.image_channels * (2 if cfg.input == "energy" else 1), c, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1),
            nn.SiLU(),
        )
        self.to_tokens = nn.Linear(2 * c, cfg.dim)
        if cfg.level_convs == 0:
            self.level = nn.Conv2d(2 * c, 1, 1)
        else:
            convs = [
                m
                for i in range(cfg.level_convs)
                for m in (nn.Conv2d(2 * c if i == 0 else c, c, 3, padding=1), nn.SiLU())
            ]
            self.level = nn.Sequential(*convs, nn.Conv2d(c, 1, 1))

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cond = up(LR)`` (HR size) -> ``(tokens (B,K,D), level (B,1,h,w) in [0,1] at LR/4 size)``."""
        # Read the LR content at LR resolution: up(LR) carries nothing more.
        lr = F.avg_pool2d(cond.float(), self.scale) if self.scale > 1 else cond.float()
        h = self.features(local_energy(lr) if self.cfg.input == "energy" else lr)
        grid = adaptive_mean(h.float(), self.side).flatten(2).transpose(1, 2)  # (B, K, 2c)
        return self.to_tokens(grid), torch.sigmoid(self.level(h))


class PromptFiLM(nn.Module):
    """Tokens -> one vector added to the backbone's time embedding, by attention pooling.

    A learned query attends over the tokens (a one-query cross-attention), so the network
    chooses which regions' degradation cues matter; zero-initialised output, so adding a
    prompt to a trained backbone starts as the identity.
    """

    def __init__(self, dim: int, channels: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.key = nn.Linear(dim, dim)
        self.out = nn.Sequential(nn.Linear(dim, channels), nn.SiLU(), nn.Linear(channels, channels))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B,K,D) -> (B,C,1,1)
        tokens = tokens.float()
        attn = torch.softmax(self.key(tokens) @ self.query / math.sqrt(tokens.shape[-1]), dim=1)  # (B,K)
        pooled = (attn.unsqueeze(-1) * tokens).sum(1)
        return self.out(pooled)[:, :, None, None]
