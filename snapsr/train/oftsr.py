"""OFTSR trajectory distillation: a one-step student whose time input is the realism dial.

The student ``v_phi(x_0, t)`` is the *average* velocity of the teacher's ODE from 0 to t,
so ``x_0 + t v_phi(x_0, t)`` lies on the teacher's trajectory (OFTSR sec. 3.2). At
inference the output is ``x_0 + v_phi(x_0, t)``: t -> 0 extrapolates the teacher's first
velocity (the posterior mean: faithful), t -> 1 lands on the ODE's end (realistic).

Losses, each weighted in ``OFTSRConfig`` (defaults after OFTSR's DIV2K configuration):
  bootstrap  ``|| v_phi(x_0, s) - SG[v_phi(x_0, t) + (s - t)/s (v_psi~ - v_phi(x_0, t))] ||``
             with ``x_t = x_0 + t SG[v_phi(x_0, t)]``, ``s = t + dt`` and ``v_psi~`` the
             teacher's RK2 velocity over [t, s] from x_t (OFTSR eq. 9);
  boundary   ``|| v_phi(x_0, t_min) - v_psi(x_0, 0) ||`` (the average over a vanishing
             interval is the teacher's velocity at x_0);
  alignment  ``(1 - t)^2 || v_phi(x_0, t) - v_psi(x_t, t) ||``;
  anchor     (ours, off by default) ``|| v_phi(x_0, t) - (x^psi_t - x_0) / t ||`` with ``x^psi_t`` the
             teacher's own trajectory solved from x_0 to t in ``anchor_steps`` RK2 steps. The
             bootstrap builds each target from the student's implied state, so its errors can
             compound along t; the anchor ties every dial value to the trajectory directly. It was
             our first attempt at the student's mid-dial detail bump (blurrier at t 0.375-0.5 than
             at 0.25, where the teacher's trajectory is monotone): 1,000 GPU steps with it did not
             remove the bump, the order term below did. Kept for ablation.

  order      (ours, off by default) a hinge that the output at ``s = t + dt`` carries at least the
             high-band energy (above the LR Nyquist) of the output at t: the dial's promise that
             more realism never means less detail, enforced where training sees both (measured: the
             published losses left a detail bump at t 0.25 on our small student).

``init`` starts the student from another student's weights (fine-tuning) instead of the teacher.

A student of another architecture (``DistillRunConfig.student``: a one-step latent backbone on a
diffusion prior, VPD-SR as published, or a smaller pixel network than its teacher) cannot follow
the teacher's trajectory from the teacher's own weights: it is distilled on outputs instead
(``OutputDistillLoss``): at dial ``t`` its one-step output matches the teacher's output at realism
``t`` from the same noise, i.e. the teacher's posterior mean blended towards its ``teacher_steps``-step
sample, plus the perception terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from snapsr.config import to_dict
from snapsr.degrade import DegradeConfig
from snapsr.model import weights
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR
from snapsr.model.path import expand_t
from snapsr.model.samplers import SAMPLERS
from snapsr.train.config import DataConfig, TrainConfig
from snapsr.train.loop import Recipe, RunResult, run
from snapsr.train.losses.hfp import dial_order_loss
from snapsr.train.losses.perception import PerceptionConfig
from snapsr.train.rcod import RCODConfig
from snapsr.train.recipes import recipe
from snapsr.train.student import (
    DialTime,
    StudentTerms,
    dial_predictors,
    one_step_only,
    setup_student,
)


@dataclass(frozen=True)
class OFTSRConfig:
    t_min: float = 0.01
    t_max: float = 0.99
    dt: float = 0.05  # s = t + dt
    teacher_solver: str = "rk2"  # rk2 | euler
    rk2_r: float = 0.5  # where RK2 evaluates its second velocity: 0.5 midpoint, 1.0 Heun
    w_bootstrap: float = 1.0
    w_boundary: float = 0.1
    w_align: float = 0.01
    w_anchor: float = 0.0  # the teacher's trajectory itself as a target (see above); 0: OFTSR as published
    anchor_steps: int = 4  # RK2 steps of the teacher from 0 to t for the anchor
    w_order: float = 0.0  # dial-order hinge on high-band energy between t and s (see above)
    loss: str = "l1"  # l1 | l2
    # Output distillation (a student of another architecture): the teacher's sampler and steps
    teacher_steps: int = 4
    teacher_sampler: str = "heun"

    def __post_init__(self):
        if self.anchor_steps < 1:
            raise ValueError(f"oftsr.anchor_steps must be at least 1, got {self.anchor_steps}")
        if self.teacher_steps < 1:
            raise ValueError(f"oftsr.teacher_steps must be at least 1, got {self.teacher_steps}")
        if self.teacher_sampler not in SAMPLERS:
            raise ValueError(f"oftsr.teacher_sampler must be one of {sorted(SAMPLERS)}, got {self.teacher_sampler!r}")


@dataclass(frozen=True)
class DistillRunConfig:
    teacher: str = "runs/teacher_s/ema.safetensors"  # the student starts as a copy of it ...
    init: str = ""  # ... or as these student weights (same teacher backbone and RCOD flags): fine-tuning
    # ... or, given, a student of this architecture (e.g. sd_latent on a local prior, or lrnet_s under
    # an lrnet_b teacher), distilled on the teacher's outputs (OutputDistillLoss)
    student: FlowConfig | None = None
    recipe: str = "oftsr"
    oftsr: OFTSRConfig = field(default_factory=OFTSRConfig)
    rcod: RCODConfig = field(default_factory=RCODConfig)  # grouping, prompt injection, estimator
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)  # VPD-SR terms, weighted by t
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(out_dir="runs/oftsr_s", lr=1e-5, warmup=100, val_steps=(1,))
    )


class OFTSRLoss(nn.Module):
    def __init__(
        self,
        student: FlowSR,
        teacher: FlowSR,
        cfg: OFTSRConfig,
        dial: DialTime | None = None,
        terms: StudentTerms | None = None,
    ):
        super().__init__()
        if cfg.teacher_solver not in ("rk2", "euler"):
            raise ValueError(f"teacher_solver must be rk2 or euler, got {cfg.teacher_solver!r}")
        self.student, self.cfg = student, cfg
        self.teacher = teacher.eval().requires_grad_(False)
        self.dial = dial if dial is not None else DialTime(RCODConfig(), [], cfg.t_min, cfg.t_max, student.cfg.scale)
        self.terms = terms

    @torch.no_grad()
    def teacher_velocity(self, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor, cond: torch.Tensor):
        """The teacher's average velocity over [t, s] from x_t by one Euler or RK2 step."""
        v1 = self.teacher.velocity(x_t, t, cond).float()
        if self.cfg.teacher_solver == "euler":
            return v1, v1
        r = self.cfg.rk2_r
        h = expand_t(s - t, x_t)
        v2 = self.teacher.velocity(x_t + r * h * v1, t + r * (s - t), cond).float()
        return v1, (1 - 1 / (2 * r)) * v1 + 1 / (2 * r) * v2

    @torch.no_grad()
    def anchor_target(self, x_0: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``(x^psi_t - x_0) / t``: the teacher's average velocity over [0, t], by ``anchor_steps`` RK2 steps."""
        k = self.cfg.anchor_steps
        x, h = x_0.float(), t / k
        for i in range(k):
            _, v = self.teacher_velocity(x.to(x_0.dtype), i * h, (i + 1) * h, cond)
            x = x + expand_t(h, x) * v
        return (x - x_0.float()) / expand_t(t, x)

    def bootstrap_target(self, v_t: torch.Tensor, v_teacher: torch.Tensor, t: torch.Tensor, s: torch.Tensor):
        """``v_phi(t) + (s - t)/s (v_psi~ - v_phi(t))``: the average velocity over [0, s] (OFTSR eq. 9)."""
        w = expand_t((s - t) / s, v_t)
        return v_t + w * (v_teacher - v_t)

    def _dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(a, b, reduction="none") if self.cfg.loss == "l1" else F.mse_loss(a, b, reduction="none")

    def forward(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        c = self.cfg
        st = self.student
        cond = st.condition(lr)
        eps = torch.randn(hr.shape, generator=generator).to(hr)
        x_0 = st.start(cond, eps)
        t, centre = self.dial(lr, hr, generator)
        s = (t + c.dt).clamp(max=1.0)
        t_min = torch.full_like(t, c.t_min)
        # One student pass for the three times (t, s, t_min): a batch of 3B.
        v = st.velocity(x_0.repeat(3, 1, 1, 1), torch.cat([t, s, t_min]), cond.repeat(3, 1, 1, 1), start=True).float()
        v_t, v_s, v_tmin = v.chunk(3)
        with torch.no_grad():
            x_t = x_0 + expand_t(t, x_0) * v_t.detach()  # the student's implied state at t
            v_psi_t, v_psi_bar = self.teacher_velocity(x_t, t, s, cond)
            target = self.bootstrap_target(v_t.detach(), v_psi_bar, t, s)
            v_psi_0 = self.teacher.velocity(x_0, torch.zeros_like(t), cond).float()
        l_boot = self._dist(v_s, target).mean()
        l_bound = self._dist(v_tmin, v_psi_0).mean()
        l_align = (expand_t((1 - t) ** 2, v_t) * self._dist(v_t, v_psi_t)).mean()
        loss = c.w_bootstrap * l_boot + c.w_boundary * l_bound + c.w_align * l_align
        if c.w_order > 0:  # outputs at t and s = t + dt from the same x_0: detail must not fall
            cut = 1.0 / st.cfg.scale
            loss = loss + c.w_order * dial_order_loss(x_0 + v_t, x_0 + v_s, cut)
        if c.w_anchor > 0:
            loss = loss + c.w_anchor * self._dist(v_t, self.anchor_target(x_0, t, cond)).mean()
        if self.terms is not None:  # the one-step output at the dial value t is x_0 + v_t
            loss = loss + self.terms(x_0 + v_t, hr, cond, t, centre)
        return loss


class OutputDistillLoss(nn.Module):
    """A one-step student of another architecture than its teacher's, distilled on outputs: at dial
    ``t`` (per image) its output from the noise ``eps`` matches the teacher's output at realism ``t``
    from the same ``eps`` (``FlowSR.at_realism``: the posterior mean blended towards the multi-step
    sample), plus the perception terms on the student's output."""

    def __init__(self, student: FlowSR, teacher: FlowSR, cfg: OFTSRConfig, dial: DialTime, terms: StudentTerms):
        super().__init__()
        self.student, self.cfg, self.dial, self.terms = student, cfg, dial, terms
        self.teacher = teacher.eval().requires_grad_(False)

    @torch.no_grad()
    def target(self, cond: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c, te = self.cfg, self.teacher
        x_0 = te.start(cond, eps)
        t = expand_t(t, x_0)
        return te.at_realism(x_0, t, cond, one_step=False, steps=c.teacher_steps, sampler=c.teacher_sampler).float()

    def forward(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        st = self.student
        cond = st.condition(lr)
        eps = torch.randn(hr.shape, generator=generator).to(hr)
        t, centre = self.dial(lr, hr, generator)
        target = self.target(cond, eps, t)
        out = st.one_step(st.start(cond, eps), t, cond).float()
        dist = F.l1_loss if self.cfg.loss == "l1" else F.mse_loss
        return dist(out, target) + self.terms(out, hr, cond, t, centre)


@recipe("oftsr", config=DistillRunConfig, summary="a one-step student distilled from a teacher's trajectory (OFTSR)")
def build_oftsr(cfg: DistillRunConfig, device: torch.device, label: str = "OFTSR trajectory distillation") -> Recipe:
    teacher, t_card = weights.load_flow(cfg.teacher, device)
    one_step_only(teacher.cfg.backbone, "distillation from a teacher (a multi-step flow)")
    if cfg.student is not None:  # another architecture: distilled on the teacher's outputs
        if t_card.student:
            raise ValueError(
                f"teacher {cfg.teacher} is a one-step student; output distillation needs a multi-step flow"
            )
        if cfg.student.scale != teacher.cfg.scale:
            raise ValueError(f"the student's scale ({cfg.student.scale}) is not the teacher's ({teacher.cfg.scale})")
        base = FlowSR(cfg.student)
    else:
        base = teacher
    su = setup_student(cfg, base, device, cfg.oftsr.t_min, cfg.oftsr.t_max)
    student, terms = su.student, su.terms
    if cfg.init:
        weights.init_from(
            student,
            cfg.init,
            match=("backbone", "scale", "prompt", "estimator"),
            hint="match the teacher and rcod.prompt/rcod.estimator",
        )

    def card(step: int) -> dict:
        return su.card(
            cfg,
            step,
            recipe=label,
            oftsr=to_dict(cfg.oftsr),
            teacher=t_card.name or cfg.teacher,
            distillation="outputs" if cfg.student is not None else "trajectory",
            **({"init": weights.read_card(cfg.init).get("name", cfg.init)} if cfg.init else {}),
        )

    if cfg.student is not None:
        loss = OutputDistillLoss(student, teacher, cfg.oftsr, su.dial, terms)
    else:
        loss = OFTSRLoss(student, teacher, cfg.oftsr, su.dial, terms)
    return Recipe(
        model=student,
        loss=loss,
        predictors=dial_predictors(),
        card=card,
        scale=teacher.cfg.scale,
        on_step=terms.on_step,
        critic=terms.critic(),
    )


def train_distill(cfg: DistillRunConfig, **kw) -> RunResult:
    return run(cfg, build_oftsr, **kw)
