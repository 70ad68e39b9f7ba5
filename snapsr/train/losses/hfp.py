"""High-Frequency Perception loss (VPD-SR): the detail bands of SR against HR's.

Two views of "detail", summed: the Haar wavelet detail bands (LH, HL, HH) at ``levels``
scales, compared with L1, and the FFT amplitude above ``cutoff`` times Nyquist, compared
with L1 on log amplitude so that faint high frequencies count. A blurred SR loses both, so
the loss grows with blur; identical images give exactly 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def haar_bands(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One level of the orthonormal Haar transform: ``(LL, LH|HL|HH stacked on channels)``."""
    h, w = x.shape[-2] - x.shape[-2] % 2, x.shape[-1] - x.shape[-1] % 2
    x = x[..., :h, :w]
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    ll = (a + b + c + d) / 2
    lh, hl, hh = (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2
    return ll, torch.cat([lh, hl, hh], dim=1)


def _high_mask(x: torch.Tensor, cutoff: float) -> torch.Tensor:
    """1 on the ``rfft2`` bins of ``x`` above ``cutoff`` times Nyquist (either axis), else 0."""
    fy = torch.fft.fftfreq(x.shape[-2], device=x.device).abs().view(-1, 1) * 2  # 1 = Nyquist
    fx = torch.fft.rfftfreq(x.shape[-1], device=x.device).view(1, -1) * 2
    return (torch.maximum(fy, fx) > cutoff).to(x.dtype)


def _fft_high(x: torch.Tensor, cutoff: float) -> torch.Tensor:
    amp = torch.fft.rfft2(x, norm="ortho").abs()
    return torch.log1p(amp * 100) * _high_mask(x, cutoff)


def hfp_loss(sr: torch.Tensor, hr: torch.Tensor, *, levels: int = 2, cutoff: float = 0.25) -> torch.Tensor:
    """Wavelet detail-band L1 plus high-band log-amplitude L1 (default: above the x4 LR Nyquist)."""
    a, b = sr.float(), hr.float()
    loss = a.new_zeros(())
    for _ in range(levels):
        if min(a.shape[-2:]) < 2:
            break
        a, da = haar_bands(a)
        b, db = haar_bands(b)
        loss = loss + F.l1_loss(da, db)
    return loss + F.l1_loss(_fft_high(sr.float(), cutoff), _fft_high(hr.float(), cutoff))


def high_band_energy(x: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """Per-image mean energy ``(B,)`` above ``cutoff`` times Nyquist (Parseval: FFT with ``norm="ortho"``)."""
    x = x.float()
    power = torch.fft.rfft2(x - x.mean((-2, -1), keepdim=True), norm="ortho").abs().square()
    return (power * _high_mask(x, cutoff)).flatten(1).sum(1) / x[0].numel()


def dial_order_loss(lower: torch.Tensor, higher: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """Hinge keeping the dial's detail monotone: the output at the higher dial value must carry at
    least the high-band energy of the output at the lower one (relative, per image; 0 when it does)."""
    e_lo, e_hi = high_band_energy(lower, cutoff), high_band_energy(higher, cutoff)
    return (F.relu(e_lo - e_hi) / (e_lo.detach() + 1e-8)).mean()
