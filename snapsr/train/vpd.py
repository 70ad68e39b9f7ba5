"""VPD-SR's recipe (Visual Perception Diffusion Distillation): a one-step student distilled from a
multi-step teacher with Explicit Semantic Supervision (CLIP image features), the High-Frequency
Perception loss and a patch discriminator.

The distillation itself is OFTSR's (``oftsr.py``: the teacher's trajectory, the dial as the
time input); the perception terms are ``losses/perception.py``, each weighted by the dial ``t``
per image so realism 0 stays faithful. This file gives the recipe its defaults: HFP and the
adversarial term on (the weights our own runs found stable: ``campaign/README.md``, stage 4),
the semantic term on as soon as ``perception.clip_path`` names a local CLIP folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from snapsr.train.config import TrainConfig
from snapsr.train.loop import Recipe
from snapsr.train.losses.perception import PerceptionConfig
from snapsr.train.oftsr import DistillRunConfig, build_oftsr
from snapsr.train.recipes import recipe


@dataclass(frozen=True)
class VPDRunConfig(DistillRunConfig):
    recipe: str = "vpd"
    perception: PerceptionConfig = field(
        default_factory=lambda: PerceptionConfig(w_hfp=0.1, w_adv=0.015, adv_start=500, adv_ramp=1000)
    )
    w_semantic: float = 0.1  # perception.w_semantic when perception.clip_path is given (CLIP is not bundled)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(out_dir="runs/vpd_s", lr=1e-5, warmup=100, val_steps=(1,))
    )


@recipe("vpd", config=VPDRunConfig, summary="OFTSR distillation with CLIP, HFP and adversarial terms (VPD-SR)")
def build_vpd(cfg: VPDRunConfig, device: torch.device) -> Recipe:
    p = cfg.perception
    if p.clip_path and p.w_semantic == 0:
        cfg = dataclasses.replace(cfg, perception=dataclasses.replace(p, w_semantic=cfg.w_semantic))
    return build_oftsr(cfg, device, label="VPD-SR distillation (OFTSR with perception terms)")
