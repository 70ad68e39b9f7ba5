"""The linear (rectified-flow) probability path between a start state and the HR image."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PathSample:
    x_t: torch.Tensor
    dx_t: torch.Tensor  # the velocity target d x_t / dt = x_1 - x_0
    t: torch.Tensor  # broadcastable against x_t


def expand_t(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A scalar, a ``(B,)`` vector or a per-pixel ``(B,1,H,W)`` map -> broadcastable against ``x``."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 1:
        t = t.view(-1, *([1] * (x.ndim - 1)))
    return t


def time_map(t: torch.Tensor | float, batch: int, like: torch.Tensor) -> torch.Tensor:
    """Any accepted form of ``t`` (a number, ``(B,)``, ``(B,H,W)``, ``(B,1,H,W)``) -> ``(B, 1, h, w)``
    with h, w either 1 or the image's size: what every backbone is given."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t.expand(batch).reshape(batch, 1, 1, 1)
    if t.ndim == 1:
        if t.shape[0] not in (1, batch):
            raise ValueError(f"t has {t.shape[0]} values for a batch of {batch}")
        return t.expand(batch).reshape(batch, 1, 1, 1)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"t must be a scalar, (B,), (B,H,W) or (B,1,H,W); got shape {tuple(t.shape)}")
    return t.expand(batch, 1, *t.shape[-2:])


class LinearPath:
    """``x_t = t * x_1 + (1 - t) * x_0`` (OFTSR eq. 2, rectified flow)."""

    def sample(self, *, x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor | float) -> PathSample:
        t = expand_t(t, x_0)
        return PathSample(x_t=t * x_1 + (1 - t) * x_0, dx_t=x_1 - x_0, t=t)
