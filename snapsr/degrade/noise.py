"""Gaussian and Poisson (shot) noise, colour or grey, at a level drawn per image."""

from __future__ import annotations

import torch


def _gray(img: torch.Tensor) -> torch.Tensor:
    return (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]) if img.shape[1] == 3 else img


def add_gaussian_noise(img, g, sigma_range, gray_prob) -> torch.Tensor:
    B = img.shape[0]
    sigma = (torch.rand(B, generator=g) * (sigma_range[1] - sigma_range[0]) + sigma_range[0]) / 255.0
    gray = (torch.rand(B, generator=g) < gray_prob).float()
    color_n = torch.randn(img.shape, generator=g)
    gray_n = torch.randn((B, 1, *img.shape[-2:]), generator=g).expand_as(color_n)
    m = gray.view(B, 1, 1, 1)
    noise = (m * gray_n + (1 - m) * color_n) * sigma.view(B, 1, 1, 1)
    return (img + noise.to(img)).clamp(0, 1)


def add_poisson_noise(img, g, scale_range, gray_prob) -> torch.Tensor:
    B = img.shape[0]
    scale = torch.rand(B, generator=g) * (scale_range[1] - scale_range[0]) + scale_range[0]
    gray = torch.rand(B, generator=g) < gray_prob

    def shot(x: torch.Tensor) -> torch.Tensor:
        # 8-bit photon counts; torch.poisson takes the generator only on the CPU
        lam = (x.clamp(0, 1) * 255).round().cpu().float()
        return (torch.poisson(lam, generator=g) - lam).to(x) / 255

    # each image draws only the variant it uses (grey noise is one plane shared by R, G, B)
    noise = torch.zeros_like(img)
    if (~gray).any():
        noise[~gray] = shot(img[~gray])
    if gray.any():
        noise[gray] = shot(_gray(img[gray])).expand(-1, img.shape[1], -1, -1)
    return (img + noise * scale.view(B, 1, 1, 1).to(img)).clamp(0, 1)
