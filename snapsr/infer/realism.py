"""The realism dial as one value: checked once where it enters (CLI, API, web), handed down whole,
and resolved to the flow's ``t`` tile by tile.

Three forms: one number in [0, 1] (0 faithful, 1 realistic), ``auto`` (RCOD's estimator sets it
per region from the LR), or a per-pixel map (a greyscale image: paint faithful faces and
inventive foliage). What ``t`` then means is the flow wrapper's business (``FlowSR.at_realism``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True, eq=False)
class Realism:
    value: float = 0.5  # the dial everywhere, unless auto or a map
    auto: bool = False
    map: torch.Tensor | None = (
        None  # (1, 1, h, w) float in [0, 1]; at output size once ``at_size`` ran (uint8 if compact)
    )

    @classmethod
    def parse(cls, realism=None, realism_map=None, *, default: float = 0.5, estimator: bool = True) -> Realism:
        """``realism``: None (``default``), a number, ``"auto"`` or a ``Realism``; ``realism_map``: an
        ``(h, w)``/``(1, 1, h, w)`` tensor of values in [0, 1], a greyscale PIL image or a numpy array
        (uint8, uint16 or float; colour is averaged), any size: resampled to the output.
        Bad values are a one-line ``ValueError``; ``auto`` needs a model with an estimator."""
        if realism is not None and realism_map is not None:
            raise ValueError("give realism (one value or auto) or a realism map (a value per pixel), not both")
        if isinstance(realism, Realism):
            return realism
        if realism_map is not None:
            m = _plane(realism_map)
            if m.ndim < 2 or m.numel() != m.shape[-1] * m.shape[-2]:
                raise ValueError(f"a realism map is one greyscale plane, got shape {tuple(m.shape)}")
            if not torch.isfinite(m).all():
                raise ValueError("the realism map holds NaN or Inf values")
            return cls(map=m.reshape(1, 1, *m.shape[-2:]).clamp(0, 1))
        if realism is None:
            realism = default
        if isinstance(realism, str) and realism.strip().lower() == "auto":
            if not estimator:
                raise ValueError("realism 'auto' needs weights with a realism estimator (trained with rcod.estimator)")
            return cls(auto=True)
        try:
            v = float(realism)
        except (TypeError, ValueError):
            raise ValueError(f"realism must be a number in [0, 1] or 'auto', got {realism!r}") from None
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"realism must be in [0, 1] or 'auto', got {realism!r}")
        return cls(value=v)

    @property
    def label(self) -> str:
        return "auto" if self.auto else "map" if self.map is not None else f"{self.value:g}"

    def at_size(self, H: int, W: int, compact: bool = False) -> Realism:
        """The map resampled to the output's ``H x W`` (bilinear), in 8 bits when ``compact``: a huge
        output never holds its float map."""
        if self.map is None:
            return self
        return replace(self, map=_map_8bit(self.map, H, W) if compact else _map_float(self.map, H, W))

    def for_tile(
        self, y: int, x: int, h: int, w: int, estimate: Callable[[], torch.Tensor], device
    ) -> float | torch.Tensor:
        """The flow's ``t`` for the output window ``[y, y+h) x [x, x+w)``: a number, or a map
        ``(1, 1, h, w)`` on ``device`` (``estimate()``: the estimator's, for auto)."""
        if self.auto:
            return estimate()
        if self.map is None:
            return self.value
        m = self.map[..., y : y + h, x : x + w].to(device)
        return m.float() / 255 if m.dtype == torch.uint8 else m


def _map_float(rm: torch.Tensor, H: int, W: int) -> torch.Tensor:
    return F.interpolate(rm, size=(H, W), mode="bilinear", align_corners=False).clamp(0, 1)


def _map_8bit(rm: torch.Tensor, H: int, W: int, chunk: int = 512) -> torch.Tensor:
    """``_map_float`` in 8 bits, made ``chunk`` rows at a time (never the float map of a huge output):
    bilinear sampling at the same pixel centres as ``F.interpolate(align_corners=False)``."""
    out = torch.empty(1, 1, H, W, dtype=torch.uint8)
    gx = (torch.arange(W, dtype=torch.float32) + 0.5) * 2 / W - 1
    for y in range(0, H, chunk):
        n = min(chunk, H - y)
        gy = (torch.arange(y, y + n, dtype=torch.float32) + 0.5) * 2 / H - 1
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1).unsqueeze(0)
        v = F.grid_sample(rm, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out[..., y : y + n, :] = (v.clamp(0, 1) * 255).round().to(torch.uint8)
    return out


def _plane(m) -> torch.Tensor:
    """A map given as a tensor, a PIL image or a numpy array -> float32 CPU tensor in [0, 1] units."""
    if isinstance(m, torch.Tensor):
        return m.detach().float().cpu()
    import numpy as np
    from PIL import Image

    if isinstance(m, Image.Image):
        m = np.asarray(m.convert("L"), dtype=np.float32) / 255
    a = np.asarray(m)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535
    if a.ndim == 3:
        a = a.mean(-1)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
