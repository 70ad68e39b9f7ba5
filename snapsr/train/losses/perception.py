"""VPD-SR's perception terms composed with weights: semantic (CLIP), high-frequency, LPIPS, adversarial.

Every term is off at weight 0 and then costs nothing; a term whose weights live on disk
(CLIP, LPIPS) fails at construction with the missing path named, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from snapsr.train.losses.adversarial import ARCHS, d_hinge, feature_matching, g_hinge
from snapsr.train.losses.hfp import hfp_loss
from snapsr.train.losses.semantic import SemanticEncoder, semantic_loss  # torch only; transformers loads lazily
from snapsr.train.losses.texture import texture_energy_loss


@dataclass(frozen=True)
class PerceptionConfig:
    w_hfp: float = 0.0  # High-Frequency Perception loss
    hfp_levels: int = 2
    # Detail energy per window against the ground truth's (losses.texture): no grain where the photo
    # is flat, as much detail as it has where it is not.
    w_texture: float = 0.0
    texture_window: int = 16
    # Its weight per image rises from 0 at this dial value to 1 at realism 1 instead of with t
    # (0: with t, like the other terms): stage 20's term weighted by t made the middle of the dial
    # keep heavy noise as detail (campaign/README.md, session 21).
    texture_from: float = 0.0
    w_semantic: float = 0.0  # Explicit Semantic Supervision
    clip_path: str = ""  # local CLIP folder (config.json + model.safetensors)
    w_lpips: float = 0.0
    lpips_dir: str = ""  # folder with vgg16-397923af.pth and vgg.pth
    w_adv: float = 0.0  # generator's hinge loss against the patch discriminator
    adv_start: int = 0  # no adversarial term before this step (let the generator settle first)
    adv_ramp: int = 500  # then its weight rises linearly over this many steps
    d_lr: float = 1e-4
    d_channels: int = 64
    # "patch": a PatchGAN (a logit per ~70-pixel field); "unet": a logit per pixel from a U-Net
    # (Real-ESRGAN's kind), which can tell texture from grain where a patch's energy cannot.
    d_arch: str = "patch"
    # Feature matching (pix2pixHD): L1 between the critic's activations on the output and on the
    # ground truth, a perceptual loss in the critic's learned features; on the adversarial
    # term's schedule (adv_start, adv_ramp), and it needs the critic (trained even at w_adv 0).
    w_fm: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.texture_from < 1.0:
            raise ValueError(f"perception.texture_from must be in [0, 1), got {self.texture_from}")
        if self.d_arch not in ARCHS:
            raise ValueError(f"perception.d_arch must be one of {', '.join(ARCHS)}, got {self.d_arch!r}")

    @property
    def active(self) -> bool:
        return any(w > 0 for w in (self.w_hfp, self.w_texture, self.w_semantic, self.w_lpips, self.w_adv, self.w_fm))


class PerceptionLoss(nn.Module):
    def __init__(self, cfg: PerceptionConfig, scale: int = 4):
        super().__init__()
        self.cfg, self.scale = cfg, scale
        self.semantic = self.lpips = self.critic = None
        if cfg.w_semantic > 0:
            self.semantic = SemanticEncoder.from_path(cfg.clip_path)
        if cfg.w_lpips > 0:
            from snapsr.eval.perceptual import LPIPS

            if not cfg.lpips_dir:
                raise FileNotFoundError("perception.w_lpips > 0 needs perception.lpips_dir (a local folder)")
            self.lpips = LPIPS.from_files(Path(cfg.lpips_dir))
        if cfg.w_adv > 0 or cfg.w_fm > 0:
            # Frozen except inside its own step (loop._critic_step): the generator's backward
            # must not fill its gradients, and DDP must not expect them.
            self.critic = ARCHS[cfg.d_arch](cfg.d_channels).requires_grad_(False)

    def _ramp(self, step: int) -> float:
        c = self.cfg
        return 0.0 if step < c.adv_start else min(1.0, (step - c.adv_start + 1) / max(c.adv_ramp, 1))

    def adv_weight(self, step: int) -> float:
        return self.cfg.w_adv * self._ramp(step)

    def fm_weight(self, step: int) -> float:
        return self.cfg.w_fm * self._ramp(step)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor, step: int, weight=1.0) -> torch.Tensor:
        """The weighted sum of the active terms; ``weight`` (a scalar or ``(B,)``) scales them per image."""
        c = self.cfg
        w = torch.as_tensor(weight, dtype=torch.float32, device=sr.device)
        if w.ndim == 0:
            w = w.expand(sr.shape[0])
        total = sr.new_zeros((), dtype=torch.float32)
        if c.w_texture > 0 and c.texture_from > 0:  # its own ramp, per image, over the whole batch
            ramp = ((w - c.texture_from) / (1 - c.texture_from)).clamp(0, 1)
            if (ramp > 0).any():
                per = texture_energy_loss(sr, hr, scale=self.scale, window=c.texture_window, per_image=True)
                total = total + c.w_texture * (ramp * per).mean()
        keep = w > 0
        if not keep.any():
            return total
        # Terms are means over the images that get a weight; the mean weight scales them.
        sr, hr, cond, scale = sr[keep], hr[keep], cond[keep], w[keep].mean() * keep.float().mean()
        rest = sr.new_zeros((), dtype=torch.float32)
        if c.w_hfp > 0:
            rest = rest + c.w_hfp * hfp_loss(sr, hr, levels=c.hfp_levels)
        if c.w_texture > 0 and c.texture_from == 0:
            rest = rest + c.w_texture * texture_energy_loss(sr, hr, scale=self.scale, window=c.texture_window)
        if self.semantic is not None:
            rest = rest + c.w_semantic * semantic_loss(self.semantic, sr, hr)
        if self.lpips is not None:
            rest = rest + c.w_lpips * self.lpips(sr.float(), hr.float()).mean()
        a, fm = self.adv_weight(step), self.fm_weight(step)
        if self.critic is not None and (a > 0 or fm > 0):
            if fm > 0:  # one forward for both, so that spectral norm's power step cannot differ between them
                n = sr.shape[0]
                both, feats = self.critic(torch.cat([sr, hr.to(sr.dtype)]), torch.cat([cond, cond]), features=True)
                logits = both[:n]
                rest = rest + fm * feature_matching([f[:n] for f in feats], [f[n:] for f in feats])
            else:
                logits = self.critic(sr, cond)
            if a > 0:
                rest = rest + a * g_hinge(logits)
        return total + scale * rest

    def critic_loss(self, fake: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The discriminator's hinge loss on a detached fake batch and the real one."""
        return d_hinge(self.critic(hr, cond), self.critic(fake.detach(), cond))
