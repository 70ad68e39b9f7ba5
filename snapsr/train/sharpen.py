"""The realistic end's target: the ground truth sharpened by unsharp masking, by an amount per image.

Real-ESRGAN trains its pixel and perceptual terms against a USM-sharpened ground truth
(``l1_gt_usm``, ``percep_gt_usm``): a big Gaussian (sigma about 8 at its 51-pixel kernel) takes
out the local mean, the residual is added back at half weight where it is larger than 10 levels,
through a softened mask so that flat areas (and their noise) are left alone. Its crisp edges are
in part this target. Here the amount is per image, so a dial can scale it with ``t``: the faithful
end keeps the plain ground truth, the realistic end learns the sharpened one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gauss1d(sigma: float, device, dtype) -> torch.Tensor:
    r = max(1, int(round(3 * sigma)))
    x = torch.arange(-r, r + 1, device=device, dtype=dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)``; reflect padding, replicate where the kernel's
    radius is not smaller than the image (degrade.filter2d's rule)."""
    k = _gauss1d(sigma, img.device, img.dtype)
    r, C = k.numel() // 2, img.shape[1]
    img = F.pad(img, (r,) * 4, mode="reflect" if min(img.shape[-2:]) > r else "replicate")
    img = F.conv2d(img, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return F.conv2d(img, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


def usm_sharpen(hr: torch.Tensor, amount, sigma: float = 8.0, threshold: float = 10 / 255) -> torch.Tensor:
    """``hr`` (``(B, C, H, W)`` in [0, 1]) plus ``amount`` (a scalar or ``(B,)``) times its residual
    from a Gaussian of ``sigma``, where that residual exceeds ``threshold`` in any channel (a mask
    softened by the same Gaussian), clipped to [0, 1]. ``amount`` 0 returns ``hr`` unchanged."""
    # In fp32 and the default memory layout whatever the caller's: a depthwise convolution in bf16
    # on channels-last tensors takes minutes on the CPU where this takes a tenth of a second.
    with torch.autocast(hr.device.type, enabled=False):
        x = hr.float().contiguous()
        a = torch.as_tensor(amount, dtype=x.dtype, device=x.device)
        a = a.reshape(-1, 1, 1, 1) if a.ndim else a
        residual = x - gaussian_blur(x, sigma)
        mask = (residual.abs().amax(dim=1, keepdim=True) > threshold).to(x.dtype)
        soft = gaussian_blur(mask, sigma)
        return (x + a * soft * residual).clamp(0, 1).to(hr.dtype)
