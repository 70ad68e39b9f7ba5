"""What every one-step student recipe shares: the dial's time per sample (uniform, or RCOD's
degradation groups), RCOD's estimator term, VPD-SR's perception terms and their critic.

A student's output is ``x_0 + v(x_0, t)`` with ``t`` the realism dial. The perception terms
are weighted by ``t`` per image, so low dial values stay fidelity-driven and high ones are
pushed towards realism; the estimator learns to predict each sample's dial value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn

from snapsr.config import to_dict
from snapsr.model import weights
from snapsr.model.flow import FlowSR
from snapsr.train import rcod  # a module import: rcod.py's recipe imports this file
from snapsr.train.loop import Critic, run_card
from snapsr.train.losses.perception import PerceptionConfig, PerceptionLoss


def one_step_only(backbone: str, what: str) -> None:
    """Refuse a one-step-only backbone (sd_latent: its output is a restoration, not a velocity) where
    ``what`` needs the velocity along the path."""
    from snapsr.model.backbones import latent

    if backbone in latent.ONE_STEP_ONLY:
        raise ValueError(f"backbone {backbone} is a one-step student's: {what} needs a velocity backbone (lrnet_*)")


def make_student(
    base: FlowSR,
    r: rcod.RCODConfig,
    grow: dict | None = None,
    keep_blocks: tuple[int, ...] = (),
    one_step_precond: bool = False,
) -> FlowSR:
    """A student starting as ``base`` (teacher or reference), with RCOD's encoder added if ``r`` asks,
    and ``grow`` (backbone arguments, e.g. ``{"context": 4}``) added to base's: the new parts must
    start as the identity, which is checked on a random input. ``keep_blocks``: base's trunk blocks
    that the student keeps, in order (the rest dropped: a shallower, faster student that starts
    from what the deeper one learned, as layer-dropping distillation does, then trains on).
    ``one_step_precond``: the student takes a one-step student's preconditioning (``FlowConfig``),
    if base has not already."""
    args = {**base.cfg.backbone_args, **(grow or {})}
    state = base.state_dict()
    if keep_blocks:
        state = _kept_blocks(base, state, tuple(keep_blocks))
        args["blocks"] = len(keep_blocks)
    cfg = dataclasses.replace(
        base.cfg,
        prompt=r.prompt,
        estimator=r.estimator,
        backbone_args=args,
        one_step_precond=base.cfg.one_step_precond or one_step_precond,
    )
    student = FlowSR(cfg)
    missing, unexpected = student.load_state_dict(state, strict=False)
    new = ("encoder.", "backbone.prompt.", "clip_tokens.")
    if unexpected or any(not k.startswith(new) for k in missing if not grow):
        raise ValueError(f"cannot start the student from these weights: missing {missing}, unexpected {unexpected}")
    if grow:
        g = torch.Generator().manual_seed(0)
        m = 4 * student.backbone.size_multiple
        x, cond = torch.rand(1, 3, m, m, generator=g), torch.rand(1, 3, m, m, generator=g)
        with torch.no_grad():
            # the two preconditionings agree at realism 0 alone
            t = 0.5 if student.cfg.one_step_precond == base.cfg.one_step_precond else 0.0
            same = torch.allclose(student.one_step(x, t, cond), base.one_step(x, t, cond), atol=1e-5)
        if not same:
            raise ValueError(
                f"growing the backbone by {grow} changes what the weights compute: its new parts must start at zero"
            )
    return student


def _kept_blocks(base: FlowSR, state: dict, keep: tuple[int, ...]) -> dict:
    """``state`` with the trunk's blocks ``keep`` renumbered 0, 1, ... and the others left out."""
    blocks = getattr(base.backbone, "blocks", None)
    if blocks is None or "blocks" not in getattr(base.backbone, "hparams", {}):
        raise ValueError(f"keep_blocks needs a backbone with a trunk of blocks (lrnet_*), not {base.cfg.backbone}")
    n = len(blocks)
    if list(keep) != sorted(set(keep)) or keep[0] < 0 or keep[-1] >= n:
        raise ValueError(f"keep_blocks must be increasing block indices in [0, {n - 1}], got {list(keep)}")
    new_index = {old: i for i, old in enumerate(keep)}
    out = {}
    for k, v in state.items():
        if k.startswith("backbone.blocks."):
            old = int(k.split(".")[2])
            if old not in new_index:
                continue
            k = f"backbone.blocks.{new_index[old]}." + k.split(".", 3)[3]
        out[k] = v
    return out


class DialTime(nn.Module):
    """Draws each sample's dial time: uniform in [lo, hi], or from its RCOD group."""

    def __init__(self, r: rcod.RCODConfig, boundaries: list[float], lo: float, hi: float, scale: int, encode=None):
        super().__init__()
        self.r, self.boundaries, self.lo, self.hi, self.scale = r, boundaries, lo, hi, scale
        self.encode = encode  # rcod.space = "latent": the backbone's VAE encoder

    def forward(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator):
        """``(t, centre)``: per-image times (``rcod.faithful_share`` of them at ``lo``), and with grouping
        the group centres (the estimator's target)."""
        t, centre = self._draw(lr, hr, generator)
        if self.r.faithful_share > 0:
            at_lo = torch.rand(hr.shape[0], generator=generator) < self.r.faithful_share
            t = torch.where(at_lo.to(t.device), torch.full_like(t, self.lo), t)
        return t, centre

    def _draw(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator):
        B = hr.shape[0]
        if self.r.groups <= 0:
            return (self.lo + (self.hi - self.lo) * torch.rand(B, generator=generator)).to(hr), None
        sim = rcod.similarity(lr, hr, self.scale, self.encode, relative=self.r.space == "relative")
        group = rcod.group_of(sim.cpu(), self.boundaries)
        if self.r.dial == "uniform":
            t = self.lo + (self.hi - self.lo) * torch.rand(B, generator=generator)
        else:
            t = rcod.group_time(group, self.r.groups, self.lo, self.hi, generator, self.r.jitter)
        centre = rcod.group_time(group, self.r.groups, self.lo, self.hi, None, jitter=False)
        return t.to(hr), centre.to(hr)


class StudentTerms(nn.Module):
    """RCOD's estimator term and the perception terms on a one-step output at dial ``t``."""

    def __init__(self, student: FlowSR, r: rcod.RCODConfig, p: PerceptionConfig):
        super().__init__()
        self.student, self.r = student, r
        self.perception = PerceptionLoss(p, student.cfg.scale) if p.active else None
        self.step = 0
        self._last = None  # (fake, hr, cond) for the critic

    def on_step(self, step: int) -> None:
        """The training step, for the adversarial term's start and ramp."""
        self.step = step

    def forward(self, out: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, centre) -> torch.Tensor:
        total = out.new_zeros((), dtype=torch.float32)
        if self.student.cfg.estimator:
            if centre is None:
                raise ValueError("the realism estimator needs RCOD grouping (rcod.groups > 0) for its targets")
            total = total + self.r.w_estimator * rcod.estimator_loss(self.student.encoder(cond)[1], centre)
        if self.perception is not None:
            total = total + self.perception(out, hr, cond, self.step, weight=t.detach().float())
            self._last = (out.detach(), hr, cond)
        return total

    def critic(self) -> Critic | None:
        if self.perception is None or self.perception.critic is None:
            return None
        pc = self.perception.cfg

        def loss():
            fake, hr, cond = self._last
            return self.perception.critic_loss(fake.float(), hr.float(), cond.float())

        active = lambda step: step >= pc.adv_start and self._last is not None  # noqa: E731
        return Critic(self.perception.critic, loss, pc.d_lr, active)


@dataclass
class StudentSetup:
    """The pieces every student recipe builds the same way from its run config."""

    student: FlowSR
    dial: DialTime
    terms: StudentTerms
    boundaries: list[float]  # RCOD's group boundaries (PSNR, descending); empty without grouping
    fresh: tuple[str, ...] = ()  # the student's parameters that ``base`` did not have (Recipe.fresh)

    def card(self, cfg, step: int, *, recipe: str, **extra) -> dict:
        """The student's weights card: the recipe's own fields, RCOD, perception and the run's."""
        return weights.flow_card(
            self.student.cfg,
            kind="student",
            recipe=recipe,
            **extra,
            rcod={**to_dict(cfg.rcod), "boundaries_psnr": self.boundaries},
            perception=to_dict(cfg.perception),
            **run_card(cfg, step),
            **self.student.card_record,  # a latent backbone's prior, a CLIP prompt's folder: with their hashes
            default_steps=1,
        )


def setup_student(cfg, base: FlowSR, device, lo: float, hi: float) -> StudentSetup:
    """Student from ``base`` (grown by ``cfg.grow``, or cut to ``cfg.keep_blocks``, where the recipe has
    them), RCOD's groups calibrated on the run's data, dial times in [lo, hi]."""
    r = cfg.rcod
    student = make_student(
        base,
        r,
        getattr(cfg, "grow", None),
        tuple(getattr(cfg, "keep_blocks", ())),
        getattr(cfg, "one_step_precond", False),
    ).to(device)
    scale = student.cfg.scale
    encode = None
    if r.space == "latent":
        encode = getattr(student.backbone, "encode", None)
        if encode is None:
            raise ValueError(f"rcod.space = 'latent' needs a latent backbone (sd_latent), not {student.cfg.backbone}")
    boundaries = rcod.calibrate(cfg, scale, r.groups, r.calib_batches, encode) if r.groups > 0 else []
    dial = DialTime(r, boundaries, lo, hi, scale, encode)
    fresh = tuple(n for n, _ in student.named_parameters() if n not in base.state_dict())
    return StudentSetup(student, dial, StudentTerms(student, r, cfg.perception).to(device), boundaries, fresh)


def dial_predictors(values=(0.0, 0.5, 1.0)) -> dict:
    """Validation outputs of a student at a few dial values."""

    def at(t: float):
        def predict(model: FlowSR, lr: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
            cond = model.condition(lr)
            return model.one_step(model.start(cond, eps), t, cond)

        return predict

    return {f"t{t:g}": at(t) for t in values}
