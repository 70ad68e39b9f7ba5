"""GTASR: one-step SR by consistency training, no teacher (Deng et al. 2026, arXiv 2602.24240).

The consistency function on our path predicts the HR end from any state,
``f(x, t) = x + (1 - t) v(x, t)`` (exactly the identity at t = 1), and the one-step output
from the start state is ``f(x_0, 0) = x_0 + v(x_0, 0)``: the student's output at dial 0.

Stage I, every step:
  consistency  ``C(f(x_t, t), SG f(x_s, s))`` for adjacent points ``t < s`` of a power-law
               time grid on the ground-truth path ``x_t = t x_1 + (1 - t) x_0`` (same x_0), the
               grid refined over training (improved consistency training's doubling schedule);
  trajectory alignment
               the one-step output ``x^ = f(x_0, 0)``, re-noised to a random ``tau`` with fresh
               noise, ``x^_tau = tau x^ + (1 - tau) x_0'``, must give the same prediction as the
               ground truth re-noised with the same noise: ``C(f(x^_tau, tau), SG f(x_tau, tau))``;
               the gradient flows through ``x^``, so the whole path, not only its end, pulls
               the one-step output onto the data trajectory;
  pixel        ``C(x_0 + v(x_0, t_d), x_1)`` at the dial value ``t_d`` (uniform, or RCOD's group).
Stage II, from ``stage2_start`` (Dual-Reference Structural Rectification):
  the Sobel edge maps of the one-step output against those of a frozen copy of the model
  (refreshed every ``refresh_every`` steps: a slowly moving structural anchor) and against
  the ground truth's edge maps.
``C`` is the Charbonnier distance. VPD-SR's perception terms and RCOD apply as in every student.
With ``w_consistency = w_ta = 0`` only the pixel term (and stage II) remain: the dial trained
directly on pairs, one network pass per sample instead of four (configs/student_s.toml).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from snapsr.config import to_dict
from snapsr.degrade import DegradeConfig
from snapsr.model import weights
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR
from snapsr.model.path import expand_t
from snapsr.train.config import DataConfig, TrainConfig
from snapsr.train.loop import Recipe, RunResult, run
from snapsr.train.losses.perception import PerceptionConfig
from snapsr.train.losses.pixel import charbonnier, dial_pixel_loss, edge_loss, phase_pattern_loss
from snapsr.train.rcod import RCODConfig
from snapsr.train.recipes import recipe
from snapsr.train.sharpen import usm_sharpen
from snapsr.train.student import dial_predictors, one_step_only, setup_student


@dataclass(frozen=True)
class GTASRConfig:
    # Stage I
    n_start: int = 10  # time-grid intervals at the start of training ...
    n_end: int = 160  # ... doubled in equal stages up to this: adjacent points move closer
    rho: float = 2.0  # power-law grid t_i = 1 - (1 - i/N)^rho, denser towards the data end
    w_consistency: float = 1.0
    w_ta: float = 1.0
    w_pixel: float = 1.0
    # The pixel term at realism 1 relative to realism 0 (1: the same everywhere), and a low-pass
    # pixel term weighted by t that keeps the realistic end's colours and coarse structure
    # (losses.pixel.dial_pixel_loss): what lets an adversarial term invent texture at t -> 1.
    pixel_at_1: float = 1.0
    w_lowpass: float = 0.0
    lowpass: int = 4
    # The sub-pixel grid (losses.pixel.phase_pattern_loss) at every dial value: what an adversarial
    # term learns to lay over the pixel shuffle's phases when nothing forbids it.
    w_phase: float = 0.0
    # An anchor for the realistic end: frozen weights (e.g. the shipped default) whose one-step
    # output, for the same start state and dial value, the student's is pulled towards with a
    # weight rising linearly from 0 at ``anchor_from`` to 1 at realism 1, the full-resolution
    # pixel term loosened by as much. The faithful end then learns from the pixels alone while the
    # realistic end keeps what the anchor's adversarial training found, without a discriminator
    # (which grows grain the longer it pushes, and without which the dial collapses).
    anchor: str = ""
    anchor_from: float = 0.25
    w_anchor: float = 1.0
    # The anchor's weight up to ``anchor_from`` (then rising linearly from it to 1 at realism 1): above
    # 0 the faithful end learns from the anchor too, as a smaller student distilled from a deeper
    # anchor does (``keep_blocks``); the anchor may then be any backbone of the same scale.
    anchor_floor: float = 0.0
    # The anchor's start noise scaled by this (its sampling temperature, UpscaleOptions.temperature)
    # while the student keeps the full noise: below 1 the student is pulled towards the anchor's
    # realistic end with less of the grain the noise passes through. Stage 18 tried 0.7 for 8,000
    # steps: realism 1 learned about half of it, with a worse NIQE (campaign/README.md, session 17).
    anchor_temperature: float = 1.0
    # The dial's output at ``t`` learns the ground truth sharpened by unsharp masking by
    # ``target_usm * t`` (train.sharpen, Real-ESRGAN's USM target; 0: the plain ground truth).
    target_usm: float = 0.0
    usm_sigma: float = 8.0
    charbonnier_eps: float = 1e-3
    # Stage II: Dual-Reference Structural Rectification
    stage2_start: int = -1  # first step of stage II; -1: never
    refresh_every: int = 500  # steps between refreshes of the frozen reference
    w_ref: float = 0.5  # edges against the frozen reference's output
    w_edge: float = 0.5  # edges against the ground truth's

    def __post_init__(self):
        if self.refresh_every < 1:
            raise ValueError(f"gtasr.refresh_every must be at least 1 step, got {self.refresh_every}")
        if not 0.0 <= self.pixel_at_1 <= 1.0:
            raise ValueError(f"gtasr.pixel_at_1 must be in [0, 1], got {self.pixel_at_1}")
        if self.lowpass < 1:
            raise ValueError(f"gtasr.lowpass must be at least 1, got {self.lowpass}")
        if not 0.0 <= self.anchor_from < 1.0:
            raise ValueError(f"gtasr.anchor_from must be in [0, 1), got {self.anchor_from}")
        if not 0.0 <= self.anchor_floor <= 1.0:
            raise ValueError(f"gtasr.anchor_floor must be in [0, 1], got {self.anchor_floor}")
        if not 0.0 <= self.target_usm <= 2.0 or self.usm_sigma <= 0:
            raise ValueError(
                f"gtasr.target_usm must be in [0, 2] and usm_sigma positive, got {self.target_usm}, {self.usm_sigma}"
            )
        if not 0.0 <= self.anchor_temperature <= 2.0:
            raise ValueError(f"gtasr.anchor_temperature must be in [0, 2], got {self.anchor_temperature}")


@dataclass(frozen=True)
class GTASRRunConfig:
    init: str = ""  # weights to start from (e.g. a flow teacher: faster than random); "" = random
    # Backbone arguments added to init's (e.g. {context = 4}: lrnet's context branch), their new parts
    # starting at zero: the student starts as init and trains the new capacity on.
    grow: dict[str, Any] = field(default_factory=dict)
    # init's trunk blocks the student keeps (e.g. [0, 1, 2, 3, 5, 6] of 12): a shallower, faster tier
    # that starts from init's weights; with gtasr.anchor = init and anchor_floor > 0 it is distilled
    # from the deeper network at every dial value. Empty: all of them.
    keep_blocks: tuple[int, ...] = ()
    # The student takes a one-step student's preconditioning (FlowConfig.one_step_precond) from here on,
    # whatever init's was; at realism 0 it computes what init did, elsewhere it learns anew.
    one_step_precond: bool = False
    recipe: str = "gtasr"
    flow: FlowConfig = field(default_factory=FlowConfig)  # the architecture when init is ""
    gtasr: GTASRConfig = field(default_factory=GTASRConfig)
    rcod: RCODConfig = field(default_factory=RCODConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(out_dir="runs/gtasr_s", lr=1e-4, warmup=200, val_steps=(1,))
    )


def time_grid_size(cfg: GTASRConfig, step: int, total: int) -> int:
    """Intervals of the grid at ``step``: n_start doubled in equal stages up to n_end."""
    doublings = max(0, math.ceil(math.log2(cfg.n_end / cfg.n_start)))
    stage = min(doublings, step * (doublings + 1) // max(total, 1))
    return min(cfg.n_start * 2**stage, cfg.n_end)


def grid_time(i: torch.Tensor, n: int, rho: float) -> torch.Tensor:
    return 1 - (1 - i.float() / n).clamp(0, 1) ** rho


class GTASRLoss(nn.Module):
    def __init__(
        self, student: FlowSR, reference: FlowSR, cfg: GTASRConfig, total_steps: int, dial, terms, anchor=None
    ):
        super().__init__()
        self.student, self.cfg, self.total = student, cfg, total_steps
        self.reference = reference.eval().requires_grad_(False)
        self.dial, self.terms = dial, terms
        # Frozen and loaded from its file at every start: kept out of the module tree, so neither the
        # checkpoint nor the optimiser sees it.
        self._anchor = [anchor.eval().requires_grad_(False)] if anchor is not None else []
        self.step = 0

    def f(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The consistency function ``x + (1 - t) v(x, t)``: the predicted HR end of the path through x."""
        return x + expand_t(1 - t, x) * self.student.velocity(x, t, cond)

    @property
    def stage2(self) -> bool:
        return 0 <= self.cfg.stage2_start <= self.step

    def on_step(self, step: int) -> None:
        self.step = step
        self.terms.on_step(step)
        c = self.cfg
        if self.stage2 and (step - c.stage2_start) % c.refresh_every == 0:
            self.reference.load_state_dict(self.student.state_dict())

    takes_peer = True  # forward takes a peer bank's crops (data.peer_bank) as the anchor target

    def forward(
        self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator, peer: torch.Tensor | None = None
    ) -> torch.Tensor:
        c, st = self.cfg, self.student
        C = lambda a, b: charbonnier(a, b, c.charbonnier_eps)  # noqa: E731
        cond = st.condition(lr)
        B = hr.shape[0]
        rand = lambda *shape: torch.randn(shape, generator=generator).to(hr)  # noqa: E731
        eps = rand(*hr.shape)
        x_0 = st.start(cond, eps)
        # the anchor's start state: the same noise, scaled by its temperature
        x_a = x_0 if c.anchor_temperature == 1.0 or not self._anchor else st.start(cond, eps * c.anchor_temperature)
        t_d, centre = self.dial(lr, hr, generator)
        # the dial output's target: the ground truth, sharpened by target_usm * t per image
        hr_d = usm_sharpen(hr, c.target_usm * t_d.float(), c.usm_sigma) if c.target_usm > 0 else hr
        if c.w_consistency == 0 and c.w_ta == 0:  # supervised dial only: one pass, no trajectory terms
            out = st.one_step(x_0, t_d, cond).float()
            loss = self.pixel_and_anchor(out, hr_d, x_a, t_d, cond, peer) + self.stage2_terms(out, x_0, t_d, cond, hr_d)
            return loss + self.terms(out, hr_d, cond, t_d, centre)
        n = time_grid_size(c, self.step, self.total)
        i = torch.randint(0, n, (B,), generator=generator)
        t, s = grid_time(i, n, c.rho).to(hr), grid_time(i + 1, n, c.rho).to(hr)
        x_t = expand_t(t, hr) * hr + expand_t(1 - t, hr) * x_0
        x_s = expand_t(s, hr) * hr + expand_t(1 - s, hr) * x_0
        zeros = torch.zeros_like(t)

        # One pass with gradients for the dial output, the dial-0 output and the consistency point.
        three = torch.cat([x_0, x_0, x_t])
        times = torch.cat([t_d, zeros, t])
        v = st.velocity(three, times, cond.repeat(3, 1, 1, 1)).float()
        out = x_0 + v[:B]
        out_0 = x_0 + v[B : 2 * B]
        f_t = x_t + expand_t(1 - t, x_t) * v[2 * B :]

        tau = torch.rand(B, generator=generator).to(hr)
        x_0b = st.start(cond, rand(*hr.shape))  # fresh noise for the re-noising
        y_tau = expand_t(tau, hr) * hr + expand_t(1 - tau, hr) * x_0b
        with torch.no_grad():
            f_s, f_y = self.f(torch.cat([x_s, y_tau]), torch.cat([s, tau]), cond.repeat(2, 1, 1, 1)).float().chunk(2)
        hat_tau = expand_t(tau, hr) * out_0 + expand_t(1 - tau, hr) * x_0b
        f_hat = self.f(hat_tau, tau, cond).float()

        loss = c.w_consistency * C(f_t, f_s) + c.w_ta * C(f_hat, f_y)
        loss = loss + self.pixel_and_anchor(out, hr_d, x_a, t_d, cond, peer)
        return loss + self.stage2_terms(out, x_0, t_d, cond, hr_d) + self.terms(out, hr_d, cond, t_d, centre)

    def anchor_weight(self, t_d: torch.Tensor) -> torch.Tensor:
        """Per image: ``anchor_floor`` up to ``anchor_from``, rising linearly to 1 at realism 1."""
        a, floor = self.cfg.anchor_from, self.cfg.anchor_floor
        return floor + (1 - floor) * ((t_d.float().reshape(-1) - a) / (1 - a)).clamp(0, 1)

    def pixel_and_anchor(self, out, hr, x_a, t_d, cond, peer=None) -> torch.Tensor:
        """The pixel term at the dial value, and with an anchor its pull at the realistic end (the
        anchor's output from its start state ``x_a``, or the peer bank's upscale ``peer``)."""
        c = self.cfg
        if not self._anchor and peer is None:
            return c.w_pixel * self.pixel(out, hr, t_d)
        w = self.anchor_weight(t_d)
        if peer is not None:
            target = peer.float()
        else:
            with torch.no_grad():
                target = self._anchor[0].one_step(x_a, t_d, cond).float()
        pull = (w * charbonnier(out, target, c.charbonnier_eps, per_image=True)).mean()
        return c.w_pixel * self.pixel(out, hr, t_d, 1 - w) + c.w_anchor * pull

    def pixel(self, out: torch.Tensor, hr: torch.Tensor, t_d: torch.Tensor, weight=None) -> torch.Tensor:
        c = self.cfg
        loss = dial_pixel_loss(
            out,
            hr,
            t_d,
            at_1=c.pixel_at_1,
            w_lowpass=c.w_lowpass,
            lowpass=c.lowpass,
            eps=c.charbonnier_eps,
            weight=weight,
        )
        if c.w_phase > 0:
            loss = loss + c.w_phase * phase_pattern_loss(out, hr, self.student.cfg.scale)
        return loss

    def stage2_terms(self, out, x_0, t_d, cond, hr) -> torch.Tensor:
        """DRSR: the output's edges against the frozen reference's and the ground truth's (0 in stage I)."""
        c = self.cfg
        if not self.stage2:
            return out.new_zeros(())
        with torch.no_grad():
            ref = self.reference.one_step(x_0, t_d, cond).float()
        return c.w_ref * edge_loss(out, ref) + c.w_edge * edge_loss(out, hr)


@recipe("gtasr", config=GTASRRunConfig, summary="one-step consistency training from data alone, no teacher (GTASR)")
def build_gtasr(cfg: GTASRRunConfig, device: torch.device) -> Recipe:
    if cfg.keep_blocks and not cfg.init:
        raise ValueError("keep_blocks cuts init's trunk: set init to the weights to start from")
    if cfg.init:
        base, _ = weights.load_flow(cfg.init)
    else:
        base = FlowSR(cfg.flow)
    if cfg.gtasr.w_consistency > 0 or cfg.gtasr.w_ta > 0:
        one_step_only(
            base.cfg.backbone, "GTASR's consistency and trajectory terms (set gtasr.w_consistency = w_ta = 0)"
        )
    su = setup_student(cfg, base, device, 0.0, 1.0)
    student, terms = su.student, su.terms
    if student.cfg.one_step_precond and (cfg.gtasr.w_consistency > 0 or cfg.gtasr.w_ta > 0):
        raise ValueError(
            "GTASR's consistency and trajectory terms run the student from states along the path: "
            "a one-step student's preconditioning (one_step_precond) needs gtasr.w_consistency = w_ta = 0"
        )
    reference = copy.deepcopy(student)
    anchor = None
    if cfg.gtasr.anchor and cfg.data.peer_bank:
        raise ValueError("gtasr.anchor and data.peer_bank are two anchor targets: set one")
    if cfg.gtasr.anchor:
        anchor, _ = weights.load_flow(cfg.gtasr.anchor)
        a, s = anchor.cfg, student.cfg
        # the anchor's output is an image from the same start state: any backbone, any size
        if (a.scale, a.sigma_p) != (s.scale, s.sigma_p):
            raise ValueError(
                f"gtasr.anchor {cfg.gtasr.anchor} is a {a.backbone} x{a.scale} with sigma_p {a.sigma_p}, "
                f"the student a {s.backbone} x{s.scale} with sigma_p {s.sigma_p}: they must match"
            )
        anchor = anchor.to(device)
    loss = GTASRLoss(student, reference, cfg.gtasr, cfg.train.steps, su.dial, terms, anchor)

    def card(step: int) -> dict:
        return su.card(
            cfg,
            step,
            recipe="GTASR consistency training",
            gtasr=to_dict(cfg.gtasr),
            **({"init": cfg.init} if cfg.init else {}),
            **({"keep_blocks": list(cfg.keep_blocks)} if cfg.keep_blocks else {}),
        )

    return Recipe(
        model=student,
        loss=loss,
        predictors=dial_predictors(),
        card=card,
        scale=student.cfg.scale,
        on_step=loss.on_step,
        state={"reference": reference},
        critic=terms.critic(),
        fresh=su.fresh,
    )


def train_gtasr(cfg: GTASRRunConfig, **kw) -> RunResult:
    if cfg.recipe != "gtasr":
        raise ValueError(f"GTASRRunConfig runs the gtasr recipe, not {cfg.recipe!r}")
    return run(cfg, build_gtasr, **kw)
