"""RCOD's realism control: degradation-aware time groups and the realism estimator's loss.

Each training pair's similarity of LQ to GT (PSNR of ``up(LR)`` against HR) decides its
*time group*: the most degraded quantile trains at the top of the dial range (the model
must invent the most), the least degraded at the bottom. The dial ``t`` of a one-step
student thus learns what "faithful" and "realistic" mean per degradation level; the user
sets it (``--realism``) or the estimator predicts the group's dial value from the LR alone
(``--realism auto``). Group boundaries are quantiles of the similarity measured once, at the
start of training, on batches drawn from the run's own data and degradations.

The ``rcod`` recipe (``RCODRunConfig``, ``build_rcod``) trains a one-step student directly on
pairs from clean to heavily degraded with all three parts on: each pair's dial value from its
group, visual prompt tokens from the LR in place of text, and the estimator. The same parts
are options (``rcod.*``) of the other student recipes. Where RCOD lives: this file (groups,
estimator target, recipe), ``model/backbones/prompt.py`` (the degradation-aware encoder and
its tokens), ``train/student.py`` (the dial time per sample, shared by every student).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from snapsr.config import to_dict
from snapsr.data import HRCrops, stream_seed
from snapsr.degrade import DegradeConfig, bicubic_down, degrade
from snapsr.model import weights
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR, upsample
from snapsr.train import student as students  # a module import: student.py imports this one too
from snapsr.train.config import DataConfig, TrainConfig
from snapsr.train.loop import Recipe, run_card
from snapsr.train.losses.perception import PerceptionConfig
from snapsr.train.losses.pixel import dial_pixel_loss
from snapsr.train.losses.texture import FLOOR, local_detail_energy, log_energy_gaps
from snapsr.train.recipes import recipe

SPACES = ("pixel", "relative", "latent")
RELATIVE_CAP = 60.0  # dB: rcod.space = "relative" scores a clean pair (its LR is the clean downscale) this


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
    # What "similar" means: "pixel", the PSNR of up(LR) against HR (as published; mostly content: a
    # flat sky scores 45 dB and grass 25 dB under the same degradation); "relative", the PSNR of the
    # LR against the clean (bicubic) downscale of the same HR, i.e. how far the degradation moved
    # the input, whatever its content (clean pairs score RELATIVE_CAP); "latent", as published for
    # RCOD on a diffusion prior, the cosine similarity of the two images' VAE latents
    space: str = "pixel"
    # This share of the samples (drawn per sample) trains the dial at exactly 0, a plain regression:
    # with t uniform over the dial the faithful end is one point among many, pulled by every
    # neighbour's objective. 12 minutes of t = 0 alone took the degraded track's realism 0 from
    # 31.56 to 32.48 dB PSNR-Y (session 10); the rest of the batch keeps the whole dial.
    faithful_share: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.faithful_share <= 1.0:
            raise ValueError(f"rcod.faithful_share must be in [0, 1], got {self.faithful_share}")
        if self.dial not in ("group", "uniform"):
            raise ValueError(f"rcod.dial must be 'group' or 'uniform', got {self.dial!r}")
        if self.space not in SPACES:
            raise ValueError(f"rcod.space must be one of {', '.join(SPACES)}; got {self.space!r}")


@torch.no_grad()
def similarity(lr: torch.Tensor, hr: torch.Tensor, scale: int, encode=None, relative: bool = False) -> torch.Tensor:
    """Per image, high = mildly degraded: the PSNR (dB) of ``up(LR)`` against HR; with ``relative``
    the PSNR of the LR against the clean downscale of HR (``bicubic_down``, at LR size; a clean pair
    scores ``RELATIVE_CAP``); with ``encode`` (a latent backbone's VAE encoder) the cosine
    similarity of their latents."""
    if relative:
        if encode is not None:
            raise ValueError("rcod.space is 'relative' or 'latent', not both")
        mse = (lr.float() - bicubic_down(hr.float(), scale)).pow(2).mean((1, 2, 3))
        return -10 * torch.log10(mse.clamp_min(10 ** (-RELATIVE_CAP / 10)))
    up = upsample(lr.float(), scale).clamp(0, 1)
    if encode is not None:
        return F.cosine_similarity(encode(up).flatten(1).float(), encode(hr.float()).flatten(1).float(), dim=1)
    mse = (up - hr.float()).pow(2).mean((1, 2, 3))
    return -10 * torch.log10(mse.clamp_min(1e-10))


@torch.no_grad()
def calibrate(cfg, scale: int, groups: int, batches: int, encode=None) -> list[float]:
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
        sims.append(similarity(degrade(hr, scale, cfg.degrade, g), hr, scale, encode, cfg.rcod.space == "relative"))
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


# ---------------------------------------------------------------------------
# the recipe


@dataclass(frozen=True)
class RCODRunConfig:
    init: str = ""  # weights to start from (a teacher or a student); "" = random
    recipe: str = "rcod"
    flow: FlowConfig = field(default_factory=FlowConfig)  # the architecture when init is ""
    rcod: RCODConfig = field(default_factory=lambda: RCODConfig(groups=4, prompt=True, estimator=True))
    # The pixel term: full weight at dial 0, ``pixel_at_1`` at dial 1, plus a t-weighted low-pass
    # term (losses.pixel.dial_pixel_loss); VPD-SR's perception terms (off by default) add realism.
    pixel_at_1: float = 1.0
    w_lowpass: float = 0.0
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    # Clean, lightly and heavily degraded pairs, so the groups span what users feed the model.
    degrade: DegradeConfig = field(default_factory=lambda: DegradeConfig(clean_share=0.2, light_share=0.2))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(out_dir="runs/rcod_s", lr=1e-4, warmup=200, val_steps=(1,))
    )

    def __post_init__(self):
        if self.rcod.groups < 1:
            raise ValueError("the rcod recipe groups its pairs: rcod.groups must be at least 1")


class RCODLoss(nn.Module):
    """One network pass per pair: the one-step output at the pair's group dial value against HR."""

    def __init__(self, student: FlowSR, cfg: RCODRunConfig, dial, terms):
        super().__init__()
        self.student, self.cfg, self.dial, self.terms = student, cfg, dial, terms

    def forward(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        st = self.student
        cond = st.condition(lr)
        x_0 = st.start(cond, torch.randn(hr.shape, generator=generator).to(hr))
        t, centre = self.dial(lr, hr, generator)
        out = st.one_step(x_0, t, cond).float()
        loss = dial_pixel_loss(out, hr, t, at_1=self.cfg.pixel_at_1, w_lowpass=self.cfg.w_lowpass)
        return loss + self.terms(out, hr, cond, t, centre)


@recipe(
    "rcod",
    config=RCODRunConfig,
    summary="one-step training on degradation-grouped pairs with visual prompts (RCOD)",
)
def build_rcod(cfg: RCODRunConfig, device: torch.device) -> Recipe:
    base = weights.load_flow(cfg.init)[0] if cfg.init else FlowSR(cfg.flow)
    su = students.setup_student(cfg, base, device, 0.0, 1.0)

    def card(step: int) -> dict:
        extra = {"init": cfg.init} if cfg.init else {}
        return su.card(cfg, step, recipe="RCOD grouped one-step training", pixel_at_1=cfg.pixel_at_1, **extra)

    loss = RCODLoss(su.student, cfg, su.dial, su.terms)
    return Recipe(
        model=su.student,
        loss=loss,
        predictors=students.dial_predictors(),
        card=card,
        scale=su.student.cfg.scale,
        on_step=su.terms.on_step,
        critic=su.terms.critic(),
    )


# ---------------------------------------------------------------------------
# the estimator alone, on a trained model


@dataclass(frozen=True)
class EstimatorRunConfig:
    """Train RCOD's realism estimator of a trained student and nothing else: its outputs at any dial
    value stay bit-identical, only ``--realism auto`` changes (a model whose estimator predicts the
    same dial for every input, or one trained without an estimator)."""

    init: str = ""  # the student whose estimator to (re)train
    recipe: str = "estimator"
    # flow.encoder_input of the new estimator (its encoder is trained afresh); a model with RCOD's prompt
    # keeps its encoder (the prompt reads it) and retrains the level head alone, so this must be its own
    encoder_input: str = "energy"
    # The dial values ``--realism auto`` spans, least degraded group to most: the groups' centres in
    # this range are the targets. A model whose realistic end is grain, not texture, caps it at its
    # default realism, so auto never adds grain and turns towards fidelity where the input is clean.
    auto_range: tuple[float, float] = (0.0, 1.0)
    # Where the groups' targets sit in auto_range: "centres" of equal slices (4 groups over [0, 0.5]:
    # 0.0625 ... 0.4375, so a clean photo still gets some realism), or "ends": the least degraded
    # group at lo and the most degraded at hi, the others evenly between (0, 1/3, 2/3, 1 of the range).
    # "matched": no groups; per estimator cell, the dial value in auto_range at which the student's own
    # output carries as much fine detail as the ground truth there (``matched_dial``), so a noisy flat
    # sky gets lo (the most degraded input, yet nothing to invent) and blurred grass the most.
    targets: str = "centres"
    matched_dials: int = 5  # "matched": the dial values tried per pair, evenly over auto_range
    # "centres"/"ends" only, > 0: each group's target scaled down per estimator cell where the noise
    # the degradation added outweighs the photo's detail, the noise weighted by this (``signal_fraction``):
    # a noisy flat sky then gets lo whatever its group (at a high dial the network draws such noise as
    # worms), blurred grass keeps its group's dial. Each pair is degraded again with its noise-free twin.
    noise_weight: float = 0.0
    # flow.estimator_head of the retrained estimator: 0 a linear level head, n > 0 n 3x3 convolutions
    # first; a head of another shape than init's starts afresh
    estimator_head: int = 0
    rcod: RCODConfig = field(default_factory=lambda: RCODConfig(groups=4, estimator=True, space="relative"))
    # The run's pairs: the estimator learns what it will be shown, clean to heavily degraded.
    degrade: DegradeConfig = field(default_factory=lambda: DegradeConfig(clean_share=0.25, light_share=0.25))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            out_dir="runs/estimator", steps=3000, lr=1e-3, min_lr=1e-5, warmup=100, val_every=0, ckpt_every=500
        )
    )

    def __post_init__(self):
        if self.rcod.groups < 2 or not self.rcod.estimator:
            raise ValueError("the estimator recipe needs rcod.estimator = true and rcod.groups >= 2")
        lo, hi = self.auto_range
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"auto_range must be two dial values 0 <= lo < hi <= 1, got {self.auto_range}")
        if self.targets not in TARGETS:
            raise ValueError(f"targets must be one of {', '.join(TARGETS)}; got {self.targets!r}")
        if self.matched_dials < 2:
            raise ValueError(f"matched_dials must be at least 2, got {self.matched_dials}")
        if self.noise_weight < 0 or (self.noise_weight > 0 and self.targets == "matched"):
            raise ValueError("noise_weight (>= 0) scales the groups' targets; matched targets have no groups")


TARGETS = ("centres", "ends", "matched")


def target_span(auto_range: tuple[float, float], groups: int, targets: str) -> tuple[float, float]:
    """The span whose equal slices' centres are the groups' targets: ``auto_range`` itself for
    "centres" (and for "matched", which has no groups: the span its dials are tried over); for
    "ends", widened so that the first centre is ``lo`` and the last ``hi``."""
    lo, hi = auto_range
    if targets in ("centres", "matched"):
        return lo, hi
    span = (hi - lo) * groups / (groups - 1)
    return lo - span / (2 * groups), lo - span / (2 * groups) + span


@torch.no_grad()
def matched_dial(
    student: FlowSR,
    cond: torch.Tensor,
    eps: torch.Tensor,
    hr: torch.Tensor,
    dials: list[float],
    *,
    floor: float = FLOOR,
) -> torch.Tensor:
    """Per estimator cell (4 LR pixels square), the dial value at which ``student``'s one-step output
    from ``x_0 = start(cond, eps)`` carries as much detail above the LR Nyquist frequency as ``hr``
    there (``texture.local_detail_energy``, the mean over its levels of the log-energy gap, ``floor``
    as in the detail-energy term): linear between the two of ``dials`` (ascending) that the match
    falls between; the first where even that output is more detailed than ``hr``, the last where even
    that one is less. ``(B, 1, h, w)``, the estimator level's own grid."""
    scale = student.cfg.scale
    window = 4 * scale
    e_hr = local_detail_energy(hr, scale=scale, window=window)
    x_0 = student.start(cond, eps)
    gaps = []
    for d in dials:
        out = student.one_step(x_0, float(d), cond).float()
        e = local_detail_energy(out, scale=scale, window=window)
        gaps.append(torch.stack(log_energy_gaps(e, e_hr, floor)).mean(0))
    g = torch.stack(gaps)  # (K, B, 1, h, w): < 0 where the output has less detail than the ground truth
    d = torch.tensor(dials, dtype=g.dtype, device=g.device)
    above = g >= 0
    k = above.to(torch.uint8).argmax(0).clamp_min(1)  # the first dial at or above the match (if any)
    g0, g1 = g.gather(0, (k - 1)[None])[0], g.gather(0, k[None])[0]
    between = d[k - 1] + (d[k] - d[k - 1]) * (-g0 / (g1 - g0).clamp_min(1e-6)).clamp(0, 1)
    return torch.where(above[0], d[0], torch.where(above.any(0), between, d[-1]))


def signal_fraction(
    lr: torch.Tensor, twin: torch.Tensor, hr: torch.Tensor, scale: int, noise_weight: float = 1.0, floor: float = FLOOR
) -> torch.Tensor:
    """Per estimator cell (4 LR pixels square, ``4 * scale`` HR), ``(S + floor) / (S + noise_weight * N +
    floor)``: ``S`` the ground truth's detail energy above the LR Nyquist frequency
    (``texture.local_detail_energy``, the mean of its levels), ``N`` the energy of the noise the
    degradation added (``lr - twin``, ``twin`` the same degradation without noise), both as a variance
    per pixel. 1 without noise, near 0 where noise covers a flat region, between where it meets
    detail. ``(B, 1, h/4, w/4)``."""
    s = torch.stack(local_detail_energy(hr.float(), scale=scale, window=4 * scale)).mean(0)
    n = F.avg_pool2d((lr.float() - twin.float()).square().mean(1, keepdim=True), 4)
    h, w = min(s.shape[-2], n.shape[-2]), min(s.shape[-1], n.shape[-1])
    s, n = s[..., :h, :w], n[..., :h, :w]
    return (s + floor) / (s + noise_weight * n + floor)


class EstimatorLoss(nn.Module):
    """The estimator term alone: each pair's group centre (with ``twins``, the degradation model, scaled
    per cell by ``signal_fraction``), or with ``dials`` each cell's matched dial (``matched_dial``),
    predicted per region from the LR."""

    def __init__(
        self,
        student: FlowSR,
        dial=None,
        dials: list[float] | None = None,
        twins: DegradeConfig | None = None,
        noise_weight: float = 1.0,
    ):
        super().__init__()
        self.student, self.dial, self.dials, self.twins, self.noise_weight = student, dial, dials, twins, noise_weight

    def forward(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        st = self.student
        if self.twins is not None:  # signal_fraction: the pair made again, with its noise-free twin
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            lr = degrade(hr, st.cfg.scale, self.twins, torch.Generator().manual_seed(seed)).to(hr)
            twin = degrade(hr, st.cfg.scale, self.twins.without_noise(), torch.Generator().manual_seed(seed)).to(hr)
        cond = st.condition(lr)
        level = st.encoder(cond)[1]
        if self.dials is not None:
            eps = torch.randn(hr.shape, generator=generator).to(hr)
            target = matched_dial(st, cond, eps, hr, self.dials)
        else:
            centre = self.dial(lr, hr, generator)[1]
            if self.twins is None:
                return estimator_loss(level, centre)
            target = centre.view(-1, 1, 1, 1) * signal_fraction(lr, twin, hr, st.cfg.scale, self.noise_weight)
        h, w = min(level.shape[-2], target.shape[-2]), min(level.shape[-1], target.shape[-1])  # sides not of 4 cells
        return F.mse_loss(level[..., :h, :w].float(), target[..., :h, :w].float())


def _keep_all_but(st: FlowSR, base: FlowSR, fresh: str, init: str) -> None:
    """Load ``base``'s tensors into ``st`` except those under the prefix ``fresh`` (the part trained
    afresh); anything else that does not fit is an error."""
    kept = {k: v for k, v in base.state_dict().items() if not k.startswith(fresh)}
    missing, unexpected = st.load_state_dict(kept, strict=False)
    if unexpected or any(not k.startswith(fresh) for k in missing):
        raise ValueError(f"{init}: cannot keep its network ({len(missing)} missing, {len(unexpected)} unexpected)")


@recipe("estimator", config=EstimatorRunConfig, summary="retrain RCOD's realism estimator of a trained student alone")
def build_estimator(cfg: EstimatorRunConfig, device: torch.device) -> Recipe:
    if not cfg.init:
        raise ValueError("the estimator recipe retrains a trained model's estimator: set init")
    base = weights.load_flow(cfg.init)[0]
    if base.cfg.prompt:
        # Its prompt tokens come from the encoder's features, so they stay: only the level head on top
        # of them is retrained, and every output at a fixed dial value stays the same.
        if not base.cfg.estimator or cfg.encoder_input != base.cfg.encoder_input:
            raise ValueError(
                f"{cfg.init}: its prompt tokens share the estimator's encoder, so only its level head can be "
                f"retrained: it needs an estimator and encoder_input = {base.cfg.encoder_input!r}"
            )
        st = FlowSR(dataclasses.replace(base.cfg, estimator_head=cfg.estimator_head))
        if cfg.estimator_head == base.cfg.estimator_head:
            st.load_state_dict(base.state_dict())
        else:  # a new shape of level head: everything else is init's
            _keep_all_but(st, base, "encoder.level.", cfg.init)
        st = st.to(device).requires_grad_(False)
        st.encoder.level.requires_grad_(True)
    else:
        st = FlowSR(
            dataclasses.replace(
                base.cfg, estimator=True, encoder_input=cfg.encoder_input, estimator_head=cfg.estimator_head
            )
        )
        _keep_all_but(st, base, "encoder.", cfg.init)
        st = st.to(device).requires_grad_(False)
        st.encoder.requires_grad_(True)  # the optimizer skips what has no gradient: only the estimator moves
    scale, r = st.cfg.scale, cfg.rcod
    matched = cfg.targets == "matched"
    boundaries = [] if matched else calibrate(cfg, scale, r.groups, r.calib_batches)
    dial = (
        None
        if matched
        else students.DialTime(r, boundaries, *target_span(cfg.auto_range, r.groups, cfg.targets), scale)
    )
    lo, hi = cfg.auto_range
    dials = [lo + (hi - lo) * k / (cfg.matched_dials - 1) for k in range(cfg.matched_dials)] if matched else None

    def card(step: int) -> dict:
        return weights.flow_card(
            st.cfg,
            kind="student",
            recipe="RCOD realism estimator retrained (the network's tensors are init's)",
            init=cfg.init,
            rcod={
                **to_dict(r),
                "boundaries_psnr": boundaries,
                "auto_range": list(cfg.auto_range),
                "auto_targets": cfg.targets,
                **({"matched_dials": cfg.matched_dials} if matched else {}),
                **({"noise_weight": cfg.noise_weight} if cfg.noise_weight > 0 else {}),
            },
            **run_card(cfg, step),
            default_steps=1,
        )

    twins = cfg.degrade if cfg.noise_weight > 0 else None
    loss = EstimatorLoss(st, dial, dials, twins, cfg.noise_weight)
    return Recipe(model=st, loss=loss, predictors={}, card=card, scale=scale)
