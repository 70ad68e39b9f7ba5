"""``Upscaler``: the one public call, ``up(image, realism=None, realism_map=None, seed=0)`` (None: the model's default).

The inference contract: input floats in [0, 1]; the image stays on the CPU and
goes to the device one overlapping tile at a time; noise is seeded per output
pixel, so tiling does not change the result; greyscale, alpha and 16-bit depth
come back as they went in. Defaults: CPU; ``dtype="auto"`` measures fp32 against bf16
once per machine (``device.py``).

The realism dial arrives as one checked ``Realism`` (``realism.py``: a number, ``auto`` or a
per-pixel map) and is resolved tile by tile; what its ``t`` means for a one-step student (the
time input) or the flow teacher (a blend of its posterior mean and its ODE sample) is the flow
wrapper's ``FlowSR.at_realism``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from snapsr.config import to_dict
from snapsr.infer import colorfix as colorfix_mod
from snapsr.infer import tiling
from snapsr.infer.device import resolve_device, resolve_dtype
from snapsr.infer.imageio import Picture, from_pil, read_image, to_pil
from snapsr.infer.realism import Realism
from snapsr.model import pretrained
from snapsr.model.card import ModelCard
from snapsr.model.flow import FlowSR
from snapsr.model.samplers import SAMPLERS


@dataclass(frozen=True)
class UpscaleOptions:
    steps: int | None = None  # None: the model card's default
    sampler: str = "euler"
    tile: int = 0  # LR tile side; 0: chosen from max_memory_mb
    tile_overlap: int = 0  # 0: automatic (an eighth of the tile, at least 32)
    max_memory_mb: int = 1024  # working-memory budget for one tile
    colorfix: str = "none"
    # The start noise's scale (the sampling temperature of flows, Kingma & Dhariwal 2018): 1 as
    # trained; below 1 the realistic end keeps its sharper edges with less of the grain the noise
    # brings (benchmarks/quality.sh measures 0.7 and 0.5); 0 starts from up(LR) alone.
    temperature: float = 1.0


def _checked(options: UpscaleOptions) -> UpscaleOptions:
    if options.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {options.sampler!r}; known: {', '.join(SAMPLERS)}")
    if options.steps is not None and not 1 <= options.steps <= 1000:
        raise ValueError(f"steps must be in [1, 1000], got {options.steps}")
    if options.colorfix not in ("none", "wavelet", "adain"):
        raise ValueError(f"unknown colour fix {options.colorfix!r}; use none, wavelet or adain")
    tau = options.temperature
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (math.isfinite(tau) and 0.0 <= tau <= 2.0):
        raise ValueError(f"temperature must be a number in [0, 2], got {options.temperature!r}")
    return options


class Upscaler:
    def __init__(
        self,
        model: FlowSR,
        card: ModelCard | dict | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: str = "fp32",
        options: UpscaleOptions = UpscaleOptions(),
    ):
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        if self.device.type == "cpu" and isinstance(self.model, torch.nn.Module):
            self.model = self.model.to(memory_format=torch.channels_last)
        self.dtype = resolve_dtype(dtype, self.device, self.model) if isinstance(dtype, str) else dtype
        self.card = card if isinstance(card, ModelCard) else ModelCard.parse(card or {"flow": to_dict(model.cfg)})
        self.options = _checked(options)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, *, device="cpu", dtype="fp32", **options):
        """The bundled default (no argument), a bundled name, or a ``.safetensors`` path."""
        from snapsr.model.weights import load_flow

        path = pretrained.resolve(name_or_path)
        if path.suffix == ".onnx":  # the onnxruntime backend (snapsr export --onnx), CPU and fp32
            from snapsr.infer.onnx import OnnxFlow

            model = OnnxFlow(path)
            return cls(model, model.card, device="cpu", dtype="fp32", options=UpscaleOptions(**options))
        model, card = load_flow(path)
        return cls(model, card, device=device, dtype=dtype, options=UpscaleOptions(**options))

    def with_options(self, **changes) -> Upscaler:
        new = object.__new__(Upscaler)
        new.__dict__.update(self.__dict__)
        new.options = _checked(replace(self.options, **changes))
        return new

    @property
    def scale(self) -> int:
        return self.model.cfg.scale

    @property
    def default_realism(self) -> float | str:
        """The dial value a caller gets without naming one: the card's (chosen by evaluation on the
        three tracks, benchmarks/quality.sh), a number or ``"auto"`` (the estimator's choice per
        region); 0.5 for weights whose card does not say."""
        return self.card.default_realism

    @property
    def steps(self) -> int:
        return int(self.options.steps or self.card.default_steps)

    # -- tiles -------------------------------------------------------------------
    def bytes_per_lr_pixel(self) -> int:
        """Working memory per LR pixel of a tile: trunk activations plus HR-size states, with slack."""
        bb = self.model.backbone  # None for an ONNX graph: its trunk is lrnet_s's size
        elt = 2 if self.dtype != torch.float32 else 4
        trunk = bb.memory_per_lr_pixel(elt) if bb is not None else 64 * elt * 8
        # ~10 HR-size fp32 tensors (x, cond, eps, v, mean, blend); the input.
        return int(trunk + 3 * self.scale**2 * 4 * 10 + 64)

    def tile_size(self, stream_width: int | None = None) -> tuple[int, int]:
        """LR tile side and overlap from ``max_memory_mb``. Streaming an output ``stream_width`` pixels
        wide (``upscale_rows``), half the budget goes to the tile and a quarter to the band of
        blended rows (about 24 bytes per output pixel of it), so a wide image gets shorter tiles;
        the rest is left to the encoder's copy (JPEG). The overlap, an eighth of the tile (at least
        32 LR pixels, beyond the 26-pixel reach of a 12-block trunk), costs a 4000x3000 photo 1.27x
        its pixels in network work where a quarter cost 1.69x; an 800x600 LR photo tiled at 597 and
        blended agreed with its untiled upscale to 71 dB PSNR at overlap 64 and 70 dB at 32 (64 dB
        at 149: all bf16 rounding; 56 dB at realism 1; dial-s9, session 20)."""
        o = self.options
        budget = o.max_memory_mb * 2**20 / (2 if stream_width else 1)
        tile = o.tile or max(32, int(math.sqrt(budget / self.bytes_per_lr_pixel())))
        if stream_width and not o.tile:
            tile = max(32, min(tile, int(budget / 2 / (24 * self.scale * stream_width))))
        overlap = o.tile_overlap or max(32, tile // 8)
        return tile, min(overlap, tile // 2)

    # -- the network on one tile -----------------------------------------------
    @torch.no_grad()
    def _sr_tile(self, lr: torch.Tensor, tile: tiling.Tile, dial: Realism, seed: int):
        s, dev, m = self.scale, self.device, self.model
        lr = lr.to(dev, torch.float32)
        with torch.autocast(dev.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            cond = m.condition(lr)
            eps = tiling.position_noise(seed, cond.shape[1], tile.y0 * s, tile.x0 * s, *cond.shape[-2:], device=dev)
            if self.options.temperature != 1.0:
                eps.mul_(self.options.temperature)
            t = dial.for_tile(
                tile.y0 * s, tile.x0 * s, tile.h * s, tile.w * s, lambda: m.realism_map(cond).to(cond.dtype), dev
            )
            if hasattr(m, "upscale_tile"):  # an ONNX graph of the whole step (infer/onnx.py OnnxFlow)
                return m.upscale_tile(lr, eps, t)
            out = m.at_realism(
                m.start(cond, eps), t, cond, one_step=self.card.student, steps=self.steps, sampler=self.options.sampler
            )
        return out.float().cpu()

    def _sr(self, lr: torch.Tensor, dial: Realism, seed: int, progress=None) -> torch.Tensor:
        """``lr (1,3,h,w)`` float CPU -> ``(1,3,h*s,w*s)`` float CPU, unclamped."""
        tile, overlap = self.tile_size()
        return tiling.run_tiled(
            lambda t_lr, t: self._sr_tile(t_lr, t, dial, seed),
            lr,
            self.scale,
            tile,
            overlap,
            out_channels=3,
            progress=progress,
        )

    # -- the public call --------------------------------------------------------
    def upscale_tensor(
        self,
        lr: torch.Tensor,
        *,
        realism: float | str | Realism | None = None,
        realism_map=None,
        seed: int = 0,
        scale: float | None = None,
        progress=None,
    ) -> torch.Tensor:
        """``(1,C,h,w)`` float in [0, 1] (C = 1 or 3) -> upscaled ``(1,C,H,W)`` in [0, 1] on the CPU.

        ``realism="auto"``: the model's RCOD estimator sets the dial per region from the LR;
        ``None``: the model's ``default_realism``; ``realism_map``: a value per pixel (see ``Realism``).
        """
        x, dial, lo, span, grey = self._prepare(lr, self.realism(realism, realism_map))
        h, w = x.shape[-2:]
        out = self._sr(x, dial, seed, progress)
        if self.options.colorfix != "none":
            out = colorfix_mod.apply(self.options.colorfix, out, self.model.condition(x))
        if span is not None:
            out = out * span + lo
        out = out.clamp(0, 1)
        if scale is not None and scale != self.scale:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            out = F.interpolate(out, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        return out.mean(1, keepdim=True) if grey else out

    def upscale_rows(self, lr: torch.Tensor, *, realism=None, realism_map=None, seed: int = 0, progress=None):
        """``upscale_tensor`` in bands of finished output rows, top to bottom: yields ``(y, (1,C,n,W))``.

        Memory holds one band of tiles whatever the output size (a gigapixel output streams to its
        file). The same values as ``upscale_tensor`` (a per-pixel map is kept in 8 bits); at the
        model's own scale and without colour fix, which need the whole image.
        """
        if self.options.colorfix != "none":
            raise ValueError("colour fix needs the whole output; use upscale_tensor")
        x, dial, lo, span, grey = self._prepare(lr, self.realism(realism, realism_map), compact=True)
        tile, overlap = self.tile_size(stream_width=x.shape[-1] * self.scale)
        fn = lambda t_lr, t: self._sr_tile(t_lr, t, dial, seed)  # noqa: E731
        for y, rows in tiling.tiled_rows(fn, x, self.scale, tile, overlap, out_channels=3, progress=progress):
            if span is not None:
                rows.mul_(span).add_(lo)
            rows.clamp_(0, 1)  # in place: the band is ours until the next one
            yield y, rows.mean(1, keepdim=True) if grey else rows

    def realism(self, realism=None, realism_map=None) -> Realism:
        """The dial, checked once (``Realism.parse``): None is this model's default value."""
        return Realism.parse(realism, realism_map, default=self.default_realism, estimator=self.model.cfg.estimator)

    def _prepare(self, lr: torch.Tensor, dial: Realism, compact: bool = False):
        """The checks and the network's input: ``(x (1,3,h,w), dial at output size, lo, span, grey)``."""
        if lr.ndim != 4 or lr.shape[0] != 1 or lr.shape[1] not in (1, 3):
            raise ValueError(f"expected a (1, 1 or 3, H, W) tensor, got {tuple(lr.shape)}")
        grey = lr.shape[1] == 1
        x = lr.detach().float().cpu()
        x = x.expand(-1, 3, -1, -1).contiguous() if grey else x
        h, w = x.shape[-2:]
        lo, span = _levels(x)
        if span is not None:  # a dark or flat image: the network works on its own range (see _levels)
            x = (x - lo) / span
        return x, dial.at_size(h * self.scale, w * self.scale, compact), lo, span, grey

    def upscale_picture_rows(self, pic: Picture, **kw):
        """``upscale_picture`` in bands (see ``upscale_rows``): yields ``(y, pixels (n,W,C), alpha (n,W) or None)``."""
        lr = torch.from_numpy(pic.pixels).permute(2, 0, 1).unsqueeze(0)
        a = None if pic.alpha is None else torch.from_numpy(pic.alpha).view(1, 1, *pic.alpha.shape)
        for y, rows in self.upscale_rows(lr, **kw):
            n = rows.shape[2]
            alpha = None if a is None else _bicubic_rows(a, y, n, self.scale)[0, 0].numpy()
            yield y, rows[0].permute(1, 2, 0).numpy(), alpha

    def upscale_picture(self, pic: Picture, **kw) -> Picture:
        """A ``Picture`` (see imageio) -> the upscaled ``Picture`` with alpha, depth and metadata kept."""
        lr = torch.from_numpy(pic.pixels).permute(2, 0, 1).unsqueeze(0)
        out = self.upscale_tensor(lr, **kw)
        alpha = None
        if pic.alpha is not None:  # alpha: bicubic, on its own (no invented detail in a mask)
            a = torch.from_numpy(pic.alpha).view(1, 1, *pic.alpha.shape)
            alpha = F.interpolate(a, size=out.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
            alpha = alpha[0, 0].numpy()
        return replace(pic, pixels=out[0].permute(1, 2, 0).numpy(), alpha=alpha)

    def up(
        self,
        image,
        realism: float | str | Realism | None = None,
        realism_map=None,
        seed: int = 0,
        scale: float | None = None,
    ):
        """Upscale a PIL image, a numpy array (uint8, uint16 or float in [0, 1]; HxW or HxWxC) or a
        torch tensor (CxHxW or 1xCxHxW, float in [0, 1]); returns the same kind."""
        kw = {"realism": self.realism(realism, realism_map), "seed": seed, "scale": scale}
        if isinstance(image, torch.Tensor):
            batched = image.ndim == 4
            x = image if batched else image.unsqueeze(0)
            out = self.upscale_tensor(x, **kw).to(image.dtype)
            return out if batched else out[0]
        if isinstance(image, np.ndarray):
            return _picture_to_array(self.upscale_picture(_array_to_picture(image), **kw), image)
        from PIL import Image

        if isinstance(image, Image.Image):
            return to_pil(self.upscale_picture(from_pil(image), **kw))
        if isinstance(image, (str, Path)):
            return self.upscale_picture(read_image(image), **kw)
        raise TypeError(f"cannot upscale a {type(image).__name__}; give a PIL image, numpy array or tensor")

    __call__ = up


def _bicubic_rows(a: torch.Tensor, y: int, n: int, s: int) -> torch.Tensor:
    """Output rows ``[y, y+n)`` of ``F.interpolate(a, scale_factor=s, mode="bicubic")`` (clamped to
    [0, 1]), from a few LR rows around them: bicubic reads two rows each side, so with three of
    margin the rows are those of the whole-image interpolation."""
    h = a.shape[-2]
    lo, hi = max(0, y // s - 3), min(h, -(-(y + n) // s) + 3)
    part = F.interpolate(a[..., lo:hi, :], scale_factor=s, mode="bicubic", align_corners=False)
    return part[..., y - lo * s : y - lo * s + n, :].clamp(0, 1)


LEVELS_BELOW = 0.25


def _levels(x: torch.Tensor) -> tuple[float, float | None]:
    """``(lo, span)`` when ``x`` spans less than ``LEVELS_BELOW`` of [0, 1], else ``(0, None)``.

    The network adds detail of a fixed size in absolute values (and starts from noise of a fixed
    size): on a dark exposure, or a 16-bit image that uses 214 of its 65,535 levels, that detail
    swamps the picture. Such an image is stretched to the full range for the network and put back
    after, so its levels come out as they went in; ordinary photos (a span above a quarter, every
    image of our evaluation tracks) are untouched.
    """
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    if span >= LEVELS_BELOW or span <= 1e-6:
        return 0.0, None
    return lo, span


# ---------------------------------------------------------------------------
# conversions for the Python API


def _array_to_picture(a: np.ndarray) -> Picture:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected an HxW or HxWxC array with C in 1-4, got shape {a.shape}")
    if a.dtype == np.uint8:
        f, bits = a.astype(np.float32) / 255, 8
    elif a.dtype == np.uint16:
        f, bits = a.astype(np.float32) / 65535, 16
    elif np.issubdtype(a.dtype, np.floating):
        f, bits = a.astype(np.float32), 8
    else:
        raise TypeError(f"unsupported array dtype {a.dtype}; use uint8, uint16 or float")
    c = f.shape[-1]
    if c in (2, 4):
        return Picture(np.ascontiguousarray(f[..., :-1]), np.ascontiguousarray(f[..., -1]), bits)
    return Picture(np.ascontiguousarray(f), None, bits)


def _picture_to_array(pic: Picture, like: np.ndarray) -> np.ndarray:
    f = pic.pixels if pic.alpha is None else np.concatenate([pic.pixels, pic.alpha[..., None]], -1)
    if like.ndim == 2:
        f = f[..., 0]
    if like.dtype == np.uint8:
        return (np.clip(f, 0, 1) * 255).round().astype(np.uint8)
    if like.dtype == np.uint16:
        return (np.clip(f, 0, 1) * 65535).round().astype(np.uint16)
    return f.astype(like.dtype)
