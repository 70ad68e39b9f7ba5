"""RCOD's realism control: degradation-aware time groups and the realism estimator's loss.

Each training pair's similarity of LQ to GT (PSNR of ``up(LR)`` against HR) decides its
*time group*: the most degraded quantile trains at the top of the dial range (the model
must invent the most), the least degraded at the bottom. The dial ``t`` of a one-step
student thus learns what "faithful" and "realistic" mean per degradation level; the user
sets it (``--realism``) or the estimator predicts the group's dial value from the LR alone
(``--realism auto``). Group boundaries are quantiles of the similarity measured once, at the
start of training, on batches drawn from the run's own data and degradations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from snapsr.data import HRCrops, stream_seed
from snapsr.degrade import degrade
from snapsr.flow import upsample


@dataclass(frozen=True)
class RCODConfig:
    groups: int = 0  # 0: no grouping (t uniform); G > 0: G time groups by LQ-GT similarity
    jitter: bool = True  # t uniform within the group's range (else the group's centre)
    # "group": each sample trains only its group's slice of the dial (RCOD as published);
    # "uniform": every sample trains the whole dial and the groups only set the estimator's
    # targets, so any dial value is valid on any input (a user turns the knob on a clean photo too)
    dial: str = "group"
    calib_batches: int = 16  # batches that set the group boundaries
    prompt: bool = False  # visual prompt injection: LR tokens condition the backbone (off: ablation)
    estimator: bool = False  # learn the dial from the LR (``--realism auto``); needs groups > 0
    w_estimator: float = 0.1

    def __post_init__(self):
        if self.dial not in ("group", "uniform"):
            raise ValueError(f"rcod.dial must be 'group' or 'uniform', got {self.dial!r}")


def similarity(lr: torch.Tensor, hr: torch.Tensor, scale: int) -> torch.Tensor:
    """PSNR (dB) of ``up(LR)`` against HR, per image: high = mildly degraded."""
    mse = (upsample(lr.float(), scale).clamp(0, 1) - hr.float()).pow(2).mean((1, 2, 3))
    return -10 * torch.log10(mse.clamp_min(1e-10))


@torch.no_grad()
def calibrate(cfg, scale: int, groups: int, batches: int) -> list[float]:
    """Similarity quantiles splitting the run's training pairs into ``groups`` equal groups (descending)."""
    tc, dc = cfg.train, cfg.data
    data = HRCrops(
        dc.train_dir,
        crop=dc.crop - dc.crop % scale,
        batch_size=tc.batch_size,
        multiscale=dc.multiscale,
        cache=dc.cache,
        seed=stream_seed("rcod-calibration", tc.seed),
    )
    sims = []
    for k in range(batches):
        hr = data[k]
        g = torch.Generator().manual_seed(stream_seed("rcod-calibration", tc.seed, k))
        sims.append(similarity(degrade(hr, scale, cfg.degrade, g), hr, scale))
    sims = torch.cat(sims)
    qs = torch.tensor([1 - (i + 1) / groups for i in range(groups - 1)], dtype=sims.dtype)
    return [float(q) for q in torch.quantile(sims, qs)]


def group_of(sim: torch.Tensor, boundaries: list[float]) -> torch.Tensor:
    """Group per image: 0 above the first boundary (least degraded) ... G-1 below the last."""
    b = torch.tensor(boundaries, dtype=sim.dtype, device=sim.device)
    return (sim[:, None] < b[None, :]).sum(1)


def group_time(
    group: torch.Tensor, groups: int, lo: float, hi: float, generator: torch.Generator | None, jitter: bool = True
) -> torch.Tensor:
    """A dial value per image inside its group's slice of ``[lo, hi]``."""
    u = torch.rand(group.shape[0], generator=generator).to(group.device) if jitter else torch.full(group.shape, 0.5)
    return lo + (hi - lo) * (group.float() + u.to(group.device)) / groups


def estimator_loss(level: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE of the per-region estimate ``(B,1,h,w)`` against each image's group centre ``(B,)``."""
    return F.mse_loss(level.float(), target.float().view(-1, 1, 1, 1).expand_as(level))
