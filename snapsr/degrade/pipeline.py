"""The pipeline: Real-ESRGAN's two rounds and final stage, the clean/light/full mixture, plain bicubic."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snapsr.degrade.config import RESIZE_MODES, DegradeConfig
from snapsr.degrade.draws import choice, odd_size, uniform
from snapsr.degrade.jpeg import jpeg
from snapsr.degrade.kernels import filter2d, pad_kernel, random_kernel, sinc_kernel
from snapsr.degrade.noise import add_gaussian_noise, add_poisson_noise


def _random_resize(img, g, probs, rng, size=None) -> torch.Tensor:
    kind = choice(g, 3, probs)
    f = uniform(g, 1, rng[1]) if kind == 0 else uniform(g, rng[0], 1) if kind == 1 else 1.0
    mode = RESIZE_MODES[choice(g, 3)]
    h, w = size if size is not None else img.shape[-2:]
    new = (max(1, int(h * f)), max(1, int(w * f)))
    return F.interpolate(img, size=new, mode=mode, **({} if mode == "area" else {"align_corners": False}))


def _noise(img, g, cfg: DegradeConfig, second: bool) -> torch.Tensor:
    gp = cfg.gaussian_noise_prob2 if second else cfg.gaussian_noise_prob
    gray = cfg.gray_noise_prob2 if second else cfg.gray_noise_prob
    if uniform(g, 0, 1) < gp:
        return add_gaussian_noise(img, g, cfg.noise_range2 if second else cfg.noise_range, gray)
    return add_poisson_noise(img, g, cfg.poisson_scale_range2 if second else cfg.poisson_scale_range, gray)


def _jpeg(img, g, rng) -> torch.Tensor:
    q = torch.rand(img.shape[0], generator=g) * (rng[1] - rng[0]) + rng[0]
    return jpeg(img.clamp(0, 1), q)


def _quantize(img: torch.Tensor) -> torch.Tensor:
    return ((img.clamp(0, 1) * 255).round() / 255).clamp(0, 1)


def bicubic_down(hr: torch.Tensor, scale: int) -> torch.Tensor:
    h, w = hr.shape[-2:]
    lr = F.interpolate(hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return _quantize(lr)


def mixture_sizes(batch: int, cfg: DegradeConfig) -> tuple[int, int, int]:
    """How many images of a batch are ``(clean, light, full)``: the shares, rounded."""
    clean = round(batch * cfg.clean_share)
    light = min(round(batch * cfg.light_share), batch - clean)
    return clean, light, batch - clean - light


def degrade(hr: torch.Tensor, scale: int, cfg: DegradeConfig, generator: torch.Generator) -> torch.Tensor:
    """HR batch ``(B,3,H,W)`` in [0, 1] (H, W multiples of ``scale``) -> LR batch ``(B,3,H/s,W/s)``.

    With ``clean_share``/``light_share``, the first images of the batch are clean, the next
    lightly degraded and the rest fully (crops are drawn at random, so the order means nothing).
    """
    if hr.ndim != 4 or hr.shape[1] != 3:
        raise ValueError(f"degrade expects (B,3,H,W), got {tuple(hr.shape)}")
    if cfg.mode == "bicubic":
        return bicubic_down(hr, scale)
    if cfg.mode != "realesrgan":
        raise ValueError(f"unknown degradation mode {cfg.mode!r}")
    clean, light, full = mixture_sizes(hr.shape[0], cfg)
    if clean or light:
        parts = [bicubic_down(hr[:clean], scale)] if clean else []
        if light:
            parts.append(_second_order(hr[clean : clean + light], scale, cfg.light(), generator))
        if full:
            parts.append(_second_order(hr[clean + light :], scale, cfg, generator))
        return torch.cat(parts).to(hr.dtype)
    return _second_order(hr, scale, cfg, generator)


def _second_order(hr: torch.Tensor, scale: int, cfg: DegradeConfig, generator: torch.Generator) -> torch.Tensor:
    """Real-ESRGAN's pipeline (``cfg.second_order = False``: its first round and final resize only)."""
    g = generator
    B = hr.shape[0]
    H, W = hr.shape[-2:]
    out = hr.float()
    # -- first degradation
    if cfg.blur:
        out = filter2d(out, torch.stack([random_kernel(g, cfg, second=False) for _ in range(B)]))
    if cfg.resize:
        out = _random_resize(out, g, cfg.resize_prob, cfg.resize_range)
    if cfg.noise:
        out = _noise(out, g, cfg, second=False)
    if cfg.jpeg:
        out = _jpeg(out, g, cfg.jpeg_range)
    # -- second degradation
    if cfg.second_order:
        if cfg.blur and uniform(g, 0, 1) < cfg.second_blur_prob:
            out = filter2d(out, torch.stack([random_kernel(g, cfg, second=True) for _ in range(B)]))
        if cfg.resize:
            out = _random_resize(out, g, cfg.resize_prob2, cfg.resize_range2, size=(H // scale, W // scale))
        if cfg.noise:
            out = _noise(out, g, cfg, second=True)
    # -- final: [resize back + sinc] and JPEG, in random order
    lo, hi = cfg.kernel_size_range
    if cfg.final_sinc and uniform(g, 0, 1) < cfg.final_sinc_prob:
        size = odd_size(g, lo, hi)
        sinc = pad_kernel(sinc_kernel(size, uniform(g, math.pi / 3, math.pi)), hi)
    else:
        sinc = None
    mode = RESIZE_MODES[choice(g, 3)]
    jpeg_first = uniform(g, 0, 1) < 0.5

    def resize_back(x):
        kw = {} if mode == "area" else {"align_corners": False}
        x = F.interpolate(x, size=(H // scale, W // scale), mode=mode, **kw)
        return filter2d(x, sinc.expand(B, -1, -1)) if sinc is not None else x

    if cfg.jpeg and cfg.second_order and jpeg_first:
        out = resize_back(_jpeg(out, g, cfg.jpeg_range2))
    elif cfg.jpeg and cfg.second_order:
        out = _jpeg(resize_back(out), g, cfg.jpeg_range2)
    else:
        out = resize_back(out)
    return _quantize(out).to(hr.dtype)
