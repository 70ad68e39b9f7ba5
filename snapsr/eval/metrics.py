"""Full-reference metrics in BasicSR's conventions (``basicsr/metrics/psnr_ssim.py``).

Images are ``HxWxC`` arrays on the 0-255 scale (uint8 or float). ``crop_border``
pixels are dropped on every side; ``test_y`` uses the ITU-R BT.601 luma on the
[16, 235] scale, as BasicSR's ``to_y_channel``; arithmetic is float64.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_y(img: np.ndarray) -> np.ndarray:
    """RGB 0-255 -> Y 0-255 (BT.601, [16, 235]), ``HxWx1``."""
    img = img.astype(np.float64) / 255.0
    y = img @ np.array([65.481, 128.553, 24.966]) + 16.0
    return y[..., None]


def _prep(img: np.ndarray, crop_border: int, test_y: bool) -> np.ndarray:
    if img.ndim == 2:
        img = img[..., None]
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    if test_y and img.shape[-1] == 3:
        return to_y(img)
    return img.astype(np.float64)


def psnr(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, test_y: bool = False) -> float:
    if img.shape != ref.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs {ref.shape}")
    a, b = _prep(img, crop_border, test_y), _prep(ref, crop_border, test_y)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_plane(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM of one plane (Wang et al. 2004), valid-region Gaussian filtering as BasicSR's ``_ssim``.

    The 11x11 Gaussian is the outer product of its 11 taps, so it is applied as two 1-D passes over
    the five maps at once, each pass eleven shifted multiply-adds (float64 throughout: equal to the 2-D
    filter to ~1e-13; PyTorch's float64 convolution took 0.3 s a megapixel plane, this 0.05 s)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_taps().tolist()
    x = torch.stack([a, b, a * a, b * b, a * b])
    for dim in (1, 2):  # rows, then columns: the valid region, as BasicSR's filter2D crop
        n = x.shape[dim] - 10
        acc = x.narrow(dim, 0, n) * g[0]
        for k in range(1, 11):
            acc.add_(x.narrow(dim, k, n), alpha=g[k])
        x = acc
    mu1, mu2, e11, e22, e12 = x
    s11, s22, s12 = e11 - mu1**2, e22 - mu2**2, e12 - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


def ssim(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, test_y: bool = False) -> float:
    if img.shape != ref.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs {ref.shape}")
    a, b = _prep(img, crop_border, test_y), _prep(ref, crop_border, test_y)
    ta, tb = torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))
    return float(np.mean([_ssim_plane(ta[..., c], tb[..., c]) for c in range(a.shape[-1])]))


def to_uint8_hwc(t: torch.Tensor) -> np.ndarray:
    """``(3,H,W)`` float [0, 1] -> ``HxWx3`` uint8, rounded as a saved 8-bit image would be."""
    return (t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def hf_energy(img: np.ndarray, scale: int) -> float:
    """Spectral energy of ``img``'s Y channel above the LR Nyquist frequency (``0.5 / scale`` cycles
    per pixel), through a Hann window that keeps the border's discontinuity out of the spectrum."""
    y = to_y(img)[..., 0] if img.ndim == 3 and img.shape[-1] == 3 else img.reshape(img.shape[0], img.shape[1])
    y = y.astype(np.float64) - y.mean()
    h, w = y.shape
    y = y * np.outer(np.hanning(h), np.hanning(w))
    f = np.fft.rfft2(y)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    mask = np.maximum(np.abs(fy), np.abs(fx)) > 0.5 / scale
    return float((np.abs(f[mask]) ** 2).sum())


def hf_energy_ratio(img: np.ndarray, ref: np.ndarray, scale: int) -> float:
    """``hf_energy`` of ``img`` over that of ``ref``.

    The simplest honest gauge of how much detail an upscaler puts back: a bicubic upscale
    has almost none above ``0.5 / scale`` cycles per HR pixel (about 0.03), the HR image 1.
    """
    if img.shape != ref.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs {ref.shape}")
    den = hf_energy(ref, scale)
    return float("nan") if den == 0 else hf_energy(img, scale) / den


def spikes_per_mp(img: np.ndarray, threshold: float = 40.0) -> float:
    """Isolated-pixel artifacts per megapixel: pixels that differ from the median of their 3x3
    neighbourhood by more than ``threshold`` (0-255 scale) in some channel, while that neighbourhood's
    other pixels agree with it (its 8 neighbours' spread is below the threshold). A photo's edges and
    texture move whole neighbourhoods; a single hot pixel does not."""
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    x = x.unsqueeze(-1) if x.ndim == 2 else x
    x = x.permute(2, 0, 1)
    h, w = x.shape[-2:]
    if h < 2 or w < 2:
        return 0.0
    pad = F.pad(x[None], (1, 1, 1, 1), mode="reflect")[0]  # a border pixel's neighbours are never itself
    shifts = [pad[:, i : i + h, j : j + w] for i in range(3) for j in range(3) if (i, j) != (1, 1)]
    lo, hi = shifts[0].clone(), shifts[0].clone()
    for sh in shifts[1:]:
        torch.minimum(lo, sh, out=lo)
        torch.maximum(hi, sh, out=hi)
    # The median lies in [lo, hi], so only a calm pixel beyond lo + threshold or hi - threshold can be a
    # spike: the median (the costly part) is taken for those candidates alone. The same count as
    # taking it everywhere.
    cand = ((hi - lo) < threshold) & (((x - lo) > threshold) | ((hi - x) > threshold))
    c, yy, xx = cand.nonzero(as_tuple=True)
    if len(c) == 0:
        return 0.0
    med = torch.stack([sh[c, yy, xx] for sh in shifts]).median(0).values
    hit = (x[c, yy, xx] - med).abs() > threshold
    spike = torch.zeros(h, w, dtype=torch.bool)
    spike[yy[hit], xx[hit]] = True
    return float(spike.sum()) / (h * w) * 1e6
