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

    def forward(self, x: torch.Tensor, cond: torch.Tensor, features: bool = False):
        """The logit map; with ``features``, ``(logits, [activation after each LeakyReLU])``."""
        h, feats = torch.cat([x, cond], dim=1).float(), []
        for m in self.net:
            h = m(h)
            if isinstance(m, nn.LeakyReLU):
                feats.append(h)
        return (h, feats) if features else h


class UNetDiscriminator(nn.Module):
    """One real/fake logit per pixel from a spectral-normalised U-Net (the kind Real-ESRGAN trains
    with): three stride-2 stages down to 1/8 resolution for context, then back up with a skip at
    every scale, so that a logit judges its pixel's fine texture (grain or grass) in the light of
    the patch around it. A PatchGAN's coarse map rewards any high-frequency energy in a 70-pixel
    field; a per-pixel map can tell texture from grain where the photo has it. Any input size
    (each skip is met at its own size)."""

    def __init__(self, channels: int = 64, image_channels: int = 3):
        super().__init__()
        c = channels
        self.stem = nn.Conv2d(2 * image_channels, c, 3, 1, 1)
        self.down = nn.ModuleList(
            spectral_norm(nn.Conv2d(c * 2**i, c * 2 ** (i + 1), 4, 2, 1, bias=False)) for i in range(3)
        )
        self.up = nn.ModuleList(
            spectral_norm(nn.Conv2d(c * 2 ** (i + 1), c * 2**i, 3, 1, 1, bias=False)) for i in reversed(range(3))
        )
        self.head = nn.Sequential(
            spectral_norm(nn.Conv2d(c, c, 3, 1, 1, bias=False)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(c, c, 3, 1, 1, bias=False)),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor, features: bool = False):
        """The per-pixel logits; with ``features``, ``(logits, [each stage's activation])``."""
        h = F.leaky_relu(self.stem(torch.cat([x, cond], dim=1).float()), 0.2)
        skips, feats = [h], [h]
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
            skips.append(h)
            feats.append(h)
        skips.pop()  # the deepest stage is h itself
        for conv in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = F.leaky_relu(conv(h), 0.2) + skip
            feats.append(h)
        logits = self.head(h)
        return (logits, feats) if features else logits


ARCHS = {"patch": PatchDiscriminator, "unet": UNetDiscriminator}  # by PerceptionConfig.d_arch, checked there


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD's feature-matching loss: the mean over the critic's stages of the L1 distance
    between the output's activations and the ground truth's (held fixed), at the same places.
    A perceptual loss in a feature space the critic learns for telling real detail from fake,
    standing in for VGG's where no pretrained weights are at hand."""
    if len(fake_feats) != len(real_feats) or not fake_feats:
        raise ValueError(
            f"feature_matching needs matching non-empty stage lists, got {len(fake_feats)} and {len(real_feats)}"
        )
    return sum(F.l1_loss(f.float(), r.detach().float()) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)
