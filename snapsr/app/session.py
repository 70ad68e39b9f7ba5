"""What the web app does, without the web: load a file within limits, read the painted realism
map, preview a crop, upscale the whole picture and write it as the CLI writes it.

Kept apart from the Gradio layout (``ui.py``) so it is tested directly, and so every error a
user can cause is the CLI's one-line ``ValueError``/``ImageReadError``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from snapsr.infer.batch import DEFAULT_MAX_OUTPUT_PIXELS
from snapsr.infer.imageio import DEFAULT_MAX_PIXELS, EXTENSIONS, Picture, read_image
from snapsr.infer.imagewrite import output_format, write_image
from snapsr.infer.realism import Realism
from snapsr.infer.upscaler import Upscaler
from snapsr.model import pretrained

PREVIEW_SIDE = 160  # LR pixels of the preview crop: under a second on a 2-core CPU
EDITOR_SIDE = 768  # the picture shown for painting is at most this wide or high


@dataclass(frozen=True)
class Limits:
    max_pixels: int = DEFAULT_MAX_PIXELS  # input pixels (the decompression-bomb limit)
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    max_upload_mb: int = 50


@dataclass(frozen=True)
class Settings:
    """One upscale's choices, as the page's controls give them."""

    model: str = pretrained.DEFAULT
    realism: float = 0.5
    auto: bool = False
    scale: float | None = None  # None: the model's
    colorfix: str = "none"
    seed: int = 0
    temperature: float = 1.0  # the start noise's scale (UpscaleOptions.temperature)


@dataclass
class Result:
    before: np.ndarray  # bicubic, uint8 HxWx3 (for the before/after slider)
    after: np.ndarray  # snapsr, uint8 HxWx3
    seconds: float
    path: Path | None = None  # the written file, for download (whole-picture runs)
    dial: str = ""


class Session:
    """One server's models, limits and temporary folder (removed by ``close``)."""

    def __init__(self, limits: Limits = Limits(), workdir: str | Path | None = None, device: str = "cpu"):
        self.limits = limits
        self.device = device
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="snapsr-serve-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._models: dict[str, Upscaler] = {}
        self.last: Result | None = None  # the last whole-picture result (the browser test reads it)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def upscaler(self, s: Settings) -> Upscaler:
        if s.model not in pretrained.available():
            raise ValueError(f"no bundled model named {s.model!r}")
        if s.model not in self._models:
            self._models[s.model] = Upscaler.from_pretrained(s.model, device=self.device, dtype="auto")
        return self._models[s.model].with_options(colorfix=s.colorfix, temperature=s.temperature)

    # -- input -------------------------------------------------------------------
    def load(self, path: str | Path) -> Picture:
        """A file the user dropped, read as the CLI reads it (formats by content, pixel limit)."""
        path = Path(path)
        if path.stat().st_size > self.limits.max_upload_mb * 2**20:
            raise ValueError(f"{path.name}: larger than {self.limits.max_upload_mb} MB")
        return read_image(path, max_pixels=self.limits.max_pixels)

    @staticmethod
    def editor_image(pic: Picture) -> np.ndarray:
        """The picture to paint on: uint8 RGB, at most ``EDITOR_SIDE`` on its longer side."""
        img = _to_uint8(pic.pixels)
        h, w = img.shape[:2]
        f = min(1.0, EDITOR_SIDE / max(h, w))
        if f < 1:
            from PIL import Image

            img = np.asarray(Image.fromarray(img).resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS))
        return img

    # -- the dial ----------------------------------------------------------------
    def realism(self, up: Upscaler, s: Settings, layers: list[np.ndarray] | None) -> Realism:
        """The dial from the controls and the brush: painted pixels (any layer, alpha > 0) take their
        grey level (black faithful, white realistic), the rest the slider's value; nothing painted:
        the slider's value, or the estimator's per-region choice when ``auto`` is on."""
        painted = paint_map(layers, s.realism)
        if painted is not None:
            return up.realism(realism_map=painted)
        return up.realism("auto" if s.auto else s.realism)

    def estimator_layer(self, pic: Picture, s: Settings, size: tuple[int, int]) -> np.ndarray:
        """The estimator's dial for ``pic`` as an opaque grey RGBA layer of ``size`` (w, h): a starting
        point the user paints over."""
        up = self.upscaler(s)
        if not up.model.cfg.estimator:
            raise ValueError(f"{s.model} has no realism estimator")
        from PIL import Image

        img = Image.fromarray(_to_uint8(pic.pixels))
        f = min(1.0, 256 / max(img.size))  # the estimator judges the LR at most 256 pixels wide
        small = img.resize((max(8, round(img.width * f)), max(8, round(img.height * f))), Image.BILINEAR)
        lr = torch.from_numpy(np.asarray(small)).permute(2, 0, 1).float().div(255).unsqueeze(0)
        with torch.no_grad():
            m = up.model.realism_map(up.model.condition(lr).to(up.device))[0, 0].float().cpu()
        grey = (m.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        grey = np.asarray(Image.fromarray(grey).resize(size, Image.BILINEAR))
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])

    # -- upscales ----------------------------------------------------------------
    def preview(self, pic: Picture, s: Settings, layers=None) -> Result:
        """The centre crop (``PREVIEW_SIDE`` LR pixels) with the same dial: fast, while the slider moves."""
        up = self.upscaler(s)
        h, w = pic.pixels.shape[:2]
        ch, cw = min(h, PREVIEW_SIDE), min(w, PREVIEW_SIDE)
        y, x = (h - ch) // 2, (w - cw) // 2
        crop = replace(pic, pixels=pic.pixels[y : y + ch, x : x + cw], alpha=None)
        dial = self.realism(up, s, layers)
        if dial.map is not None:  # the same window of the painted map
            mh, mw = dial.map.shape[-2:]
            y0, x0 = y * mh // h, x * mw // w
            y1, x1 = max(y0 + 1, (y + ch) * mh // h), max(x0 + 1, (x + cw) * mw // w)
            dial = replace(dial, map=dial.map[..., y0:y1, x0:x1])
        return self._run(up, crop, s, dial, None)

    def upscale(self, pic: Picture, s: Settings, layers=None, name: str = "image", progress=None) -> Result:
        """The whole picture, written to the session folder in the input's format with its metadata."""
        up = self.upscaler(s)
        w, h = pic.size
        f = s.scale or up.scale
        out_w, out_h = max(1, round(w * f)), max(1, round(h * f))
        if out_w * out_h > self.limits.max_output_pixels:
            raise ValueError(
                f"the output would be {out_w}x{out_h} = {out_w * out_h / 1e6:,.0f} MP, over this server's "
                f"limit of {self.limits.max_output_pixels / 1e6:,.0f} MP"
            )
        fmt = output_format("same", pic.format)
        stem = "".join(c for c in Path(name).stem if c.isalnum() or c in "-_")[:80] or "image"
        dst = self.dir / f"{stem}_x{f:g}{EXTENSIONS[fmt]}"
        res = self._run(up, pic, s, self.realism(up, s, layers), progress, dst, fmt)
        self.last = res
        return res

    def _run(self, up: Upscaler, pic: Picture, s: Settings, dial: Realism, progress, dst=None, fmt=None) -> Result:
        t0 = time.perf_counter()
        out = up.upscale_picture(pic, realism=dial, seed=s.seed, scale=s.scale, progress=progress)
        seconds = time.perf_counter() - t0
        if dst is not None:
            write_image(dst, out, fmt)
        before = torch.from_numpy(pic.pixels).permute(2, 0, 1).unsqueeze(0)
        before = torch.nn.functional.interpolate(before, size=out.pixels.shape[:2], mode="bicubic", align_corners=False)
        return Result(_to_uint8(before[0].permute(1, 2, 0).numpy()), _to_uint8(out.pixels), seconds, dst, dial.label)


def paint_map(layers: list[np.ndarray] | None, base: float) -> torch.Tensor | None:
    """The per-pixel dial painted on the editor's layers (RGBA, any size, later layers on top):
    ``base`` where nothing is painted; None when nothing is."""
    if not layers:
        return None
    out = None
    for layer in layers:
        a = np.asarray(layer)
        if a.ndim != 3 or a.shape[-1] != 4 or not (a[..., 3] > 0).any():
            continue
        if out is None:
            out = np.full(a.shape[:2], base, np.float32)
        alpha = a[..., 3:4].astype(np.float32) / 255
        grey = a[..., :3].astype(np.float32).mean(-1) / 255
        out = out * (1 - alpha[..., 0]) + grey * alpha[..., 0]
    return None if out is None else torch.from_numpy(out)


def _to_uint8(px: np.ndarray) -> np.ndarray:
    px = np.repeat(px, 3, axis=-1) if px.ndim == 3 and px.shape[-1] == 1 else px
    return (np.clip(px, 0, 1) * 255).round().astype(np.uint8)
