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


class LinearPath:
    """``x_t = t * x_1 + (1 - t) * x_0`` (OFTSR eq. 2, rectified flow)."""

    def sample(self, *, x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor | float) -> PathSample:
        t = expand_t(t, x_0)
        return PathSample(x_t=t * x_1 + (1 - t) * x_0, dx_t=x_1 - x_0, t=t)
