"""NIQE (Mittal, Soundararajan and Bovik, "Making a 'completely blind' image quality
analyzer", IEEE SPL 2013), in the conventions of BasicSR's ``calculate_niqe``: the Y channel
(BT.601, [16, 235]) rounded to integers, 96x96 blocks without overlap, two scales (the second
by MATLAB's antialiased bicubic ``imresize`` at 0.5), and the MATLAB release's pristine model.

Our own NumPy implementation; the pristine parameters (``assets/niqe_pris_params.npz``) are
the published ones as distributed with BasicSR (Apache-2.0). Lower is more natural.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

_PARAMS = Path(__file__).parents[1] / "assets" / "niqe_pris_params.npz"


# ---------------------------------------------------------------------------
# MATLAB's imresize (bicubic, antialiased when shrinking), one axis at a time, in float32 torch
# arithmetic: NIQE's grid search flips on differences in the last bits of the resized image,
# and this matches BasicSR's float32 path exactly.


def _cubic(a: torch.Tensor) -> torch.Tensor:
    a = a.abs()
    a2, a3 = a * a, a * a * a
    inner = (a <= 1).to(a.dtype)
    outer = ((a > 1) & (a <= 2)).to(a.dtype)
    return (1.5 * a3 - 2.5 * a2 + 1) * inner + (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * outer


def _resize_weights(n_in: int, n_out: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The first input index of each output's taps (0-based; negative or past the end where the
    taps reach over a border) and the taps' weights ``(n_out, P)``."""
    shrink = scale < 1
    width = 4.0 / scale if shrink else 4.0  # the kernel stretches when shrinking: antialiasing
    centre = torch.linspace(1, n_out, n_out) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coords
    taps = math.ceil(width) + 2
    idx = torch.floor(centre - width / 2).view(-1, 1) + torch.linspace(0, taps - 1, taps).view(1, -1)
    dist = centre.view(-1, 1) - idx
    w = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    w = w / w.sum(1, keepdim=True)
    keep = (w != 0).any(0)  # drop taps no output uses
    return idx[:, keep][:, 0].long() - 1, w[:, keep].contiguous()


def _mirror(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    """``x`` padded symmetrically along ``dim`` (MATLAB's 'symmetric'), as one contiguous tensor."""
    n = x.shape[dim]
    mirror = torch.cat([torch.arange(n), torch.arange(n - 1, -1, -1)])
    return x.index_select(dim, mirror[torch.remainder(torch.arange(-before, n + after), 2 * n)]).contiguous()


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """``HxW`` image resized by ``scale`` as MATLAB's ``imresize(img, scale, 'bicubic')`` (float32)."""
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    h, w = x.shape
    sh, wh = _resize_weights(h, math.ceil(h * scale), scale)
    sw, ww = _resize_weights(w, math.ceil(w * scale), scale)
    ph, pw = wh.shape[1], ww.shape[1]
    # Each output is a matrix-vector product over a *view* of the padded image, laid out as in
    # BasicSR: torch's mv sums a gathered (contiguous) copy in another order, which moves the
    # last bit and flips NIQE's grid search (torch 2.13: NIQE 9.8035 instead of 9.7983).
    bh, bw = max(0, -int(sh.min())), max(0, -int(sw.min()))
    xa = _mirror(x, 0, bh, max(0, int(sh.max()) + ph - h))
    rows = torch.stack([xa[s + bh : s + bh + ph].T.mv(wh[i]) for i, s in enumerate(sh.tolist())])  # along H
    ra = _mirror(rows, 1, bw, max(0, int(sw.max()) + pw - w))
    return torch.stack([ra[:, s + bw : s + bw + pw].mv(ww[j]) for j, s in enumerate(sw.tolist())], dim=1).numpy()


# ---------------------------------------------------------------------------
# features


@lru_cache(maxsize=1)
def _gamma_table() -> tuple[np.ndarray, np.ndarray]:
    g = np.arange(0.2, 10.001, 0.001)
    r = np.array([math.gamma(2 / a) ** 2 / (math.gamma(1 / a) * math.gamma(3 / a)) for a in g])
    return g, r


def aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalized Gaussian fit by moment matching: ``(alpha, sigma_left, sigma_right)``."""
    x = x.ravel()
    # np.sqrt/np.mean keep the input's precision (float32 here, as in BasicSR): the grid search
    # below is sensitive to the last bits of rnorm
    with np.errstate(invalid="ignore", divide="ignore"):
        sl = np.sqrt(np.mean(x[x < 0] ** 2)) if np.any(x < 0) else np.float32("nan")
        sr = np.sqrt(np.mean(x[x > 0] ** 2)) if np.any(x > 0) else np.float32("nan")
        ratio = sl / sr
        rhat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
        rnorm = rhat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    g, r = _gamma_table()
    alpha = float(g[np.argmin((r - rnorm) ** 2)]) if np.isfinite(rnorm) else float(g[0])
    k = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, float(sl * k), float(sr * k)


def block_features(block: np.ndarray) -> list[float]:
    """18 numbers: the GGD fit of the normalised luminance, and AGGD fits of the products of
    neighbours in 4 orientations (horizontal, vertical, two diagonals)."""
    alpha, bl, br = aggd_fit(block)
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a, bl, br = aggd_fit(block * np.roll(block, shift, axis=(0, 1)))
        mean = (br - bl) * math.gamma(2 / a) / math.gamma(1 / a)
        feats += [a, mean, bl, br]
    return feats


def _filter_nearest(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    k = window.shape[0] // 2
    padded = np.pad(img, k, mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, window.shape)
    return np.einsum("ijkl,kl->ij", view, window[::-1, ::-1])


def niqe_y(y: np.ndarray, block: int = 96) -> float:
    """NIQE of a luminance image (``HxW``, 0-255 scale)."""
    p = np.load(_PARAMS)
    mu_p, cov_p, window = p["mu_pris_param"], p["cov_pris_param"], p["gaussian_window"]
    h, w = y.shape
    nh, nw = h // block, w // block
    if nh == 0 or nw == 0:
        raise ValueError(f"NIQE needs at least a {block}x{block} image, got {w}x{h}")
    # Precision as BasicSR's: float32 images, each filter computed in double and stored as
    # float32 (scipy's convolve); NIQE moves by ~1e-3 between float32 and float64 paths.
    f32 = np.float32
    img = y[: nh * block, : nw * block].astype(f32)
    per_scale = []
    for scale in (1, 2):
        mu = _filter_nearest(img.astype(np.float64), window).astype(f32)
        sq = _filter_nearest((img * img).astype(np.float64), window).astype(f32)
        sigma = np.sqrt(np.abs(sq - mu * mu))
        norm = (img - mu) / (sigma + f32(1))
        b = block // scale
        per_scale.append(
            np.array(
                [block_features(norm[i * b : (i + 1) * b, j * b : (j + 1) * b]) for j in range(nw) for i in range(nh)]
            )
        )
        if scale == 1:
            img = imresize(img / f32(255), 0.5) * f32(255)
    feats = np.concatenate(per_scale, axis=1)
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) < 2:  # a covariance needs two blocks with every feature defined
        return float("nan")
    mu_d = np.nanmean(feats, axis=0)
    cov_d = np.cov(complete, rowvar=False)
    d = mu_p - mu_d
    return float(np.sqrt(np.squeeze(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d.T)))


def niqe(img: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of an RGB (``HxWx3``) or grey image on the 0-255 scale, as BasicSR's ``calculate_niqe``."""
    if img.ndim == 3 and img.shape[-1] == 3:
        # Y in float32 and in BasicSR's order of operations, so that rounding agrees at .5
        f = img.astype(np.float32) / np.float32(255)
        y = (f @ np.array([65.481, 128.553, 24.966], np.float32) + np.float32(16)) / np.float32(255) * np.float32(255)
    else:
        y = img.reshape(img.shape[:2]).astype(np.float32)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_y(y.round())
