"""Adversarial training: a spectral-normalised patch discriminator and hinge losses.

The usual stabilisers: spectral norm on every conv (bounded Lipschitz constant), the hinge
loss, a conditional input (the discriminator sees ``up(LR)`` beside the image, so it judges
"a plausible HR for this LR", not just "a plausible photo"), and a ramp-in of the generator's
adversarial weight (``PerceptionConfig.adv_start`` / ``adv_ramp``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """A PatchGAN: a map of real/fake logits, one per receptive field of about 70 pixels."""

    def __init__(self, channels: int = 64, layers: int = 3, image_channels: int = 3):
        super().__init__()
        mods: list[nn.Module] = [spectral_norm(nn.Conv2d(2 * image_channels, channels, 4, 2, 1)), nn.LeakyReLU(0.2)]
        c = channels
        for i in range(1, layers):
            c_next = min(channels * 2**i, channels * 8)
            mods += [spectral_norm(nn.Conv2d(c, c_next, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c = c_next
        mods += [spectral_norm(nn.Conv2d(c, c, 3, 1, 1)), nn.LeakyReLU(0.2), spectral_norm(nn.Conv2d(c, 1, 3, 1, 1))]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, cond], dim=1).float())


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()
