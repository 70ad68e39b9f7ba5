"""FlowSR: the conditional rectified flow of OFTSR around any registered backbone.

The wrapper owns the start state, the path, the training loss and sampling; the
backbone is only ``f(x_t, t, cond) -> v`` (as k-diffusion's ``Denoiser`` wraps
its inner model), so swapping backbones touches neither training nor sampling.
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

from snapsr.model import backbones
from snapsr.model.backbones.prompt import DegradationEncoder, PromptConfig
from snapsr.model.config import FlowConfig
from snapsr.model.path import LinearPath, time_map
from snapsr.model.samplers import SAMPLERS, time_grid

ONE_STEP_ONLY = "these weights are a one-step student's (flow.one_step_precond): run them in one step"


def upsample(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """``up(LR)``: bicubic to exactly ``scale`` times the LR size."""
    h, w = lr.shape[-2:]
    return F.interpolate(lr, size=(h * scale, w * scale), mode="bicubic", align_corners=False)


class FlowSR(nn.Module):
    def __init__(self, cfg: FlowConfig, backbone: nn.Module | None = None):
        super().__init__()
        if not 0.0 <= cfg.sigma_p < 1.0:
            raise ValueError(f"sigma_p must be in [0, 1), got {cfg.sigma_p}")
        self.cfg = cfg
        hparams = {**cfg.backbone_args, **({"prompt_dim": cfg.prompt_dim} if cfg.prompt else {})}
        self.backbone = backbone if backbone is not None else backbones.create(cfg.backbone, scale=cfg.scale, **hparams)
        if cfg.precond and not getattr(self.backbone, "preconditioned", True):
            raise ValueError(f"backbone {cfg.backbone} predicts the image itself: set flow.precond = false")
        self.encoder = (
            DegradationEncoder(
                PromptConfig(
                    tokens=cfg.prompt_tokens,
                    dim=cfg.prompt_dim,
                    input=cfg.encoder_input,
                    level_convs=cfg.estimator_head,
                ),
                cfg.scale,
            )
            if cfg.prompt or cfg.estimator
            else None
        )
        self.clip_tokens = None
        if cfg.prompt_clip:
            from snapsr.model.clip import ClipTokens

            self.clip_tokens = ClipTokens(cfg.prompt_clip, cfg.prompt_tokens, cfg.prompt_dim, cfg.scale)
        self.path = LinearPath()
        self._encoded_memo: tuple | None = None

    @property
    def card_record(self) -> dict:
        """What a weights card says of the frozen parts outside the file: a latent prior, a CLIP."""
        return {
            **getattr(self.backbone, "card_record", {}),
            **(self.clip_tokens.card_record if self.clip_tokens is not None else {}),
        }

    def encode(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The degradation encoder's ``(tokens, level)`` for ``cond = up(LR)``. Without autograd the
        last result is kept for the same ``cond`` tensor (same object, unchanged, same autocast
        state), so a tile under ``auto`` reads the encoder once for its prompt and its dial map."""
        if torch.is_grad_enabled():
            return self.encoder(cond)
        weights = tuple(p._version for p in self.encoder.parameters())  # any in-place update, e.g. the level head's
        state = (cond._version, weights, torch.is_autocast_enabled(cond.device.type))
        memo = self._encoded_memo
        if memo is not None and memo[0]() is cond and memo[1] == state:
            return memo[2]
        out = self.encoder(cond)
        self._encoded_memo = (weakref.ref(cond), state, out)
        return out

    def __getstate__(self):  # a copy (EMA, a frozen reference) starts without the memo
        return {**super().__getstate__(), "_encoded_memo": None}

    def prompt(self, cond: torch.Tensor) -> torch.Tensor:
        """RCOD's visual prompt tokens ``(B, K, D)`` for ``cond = up(LR)``: the degradation encoder's,
        followed by the frozen CLIP's when ``prompt_clip`` names one."""
        tokens = self.encode(cond)[0]
        if self.clip_tokens is None:
            return tokens
        return torch.cat([tokens, self.clip_tokens(cond).to(tokens.dtype)], dim=1)

    # -- the formulation -------------------------------------------------------
    def condition(self, lr: torch.Tensor) -> torch.Tensor:
        return upsample(lr, self.cfg.scale)

    def start(self, cond: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x_0 = sqrt(1 - sigma_p^2) * up(LR) + sigma_p * eps`` (OFTSR eq. 5)."""
        s = self.cfg.sigma_p
        return torch.add(eps, cond, alpha=math.sqrt(1.0 - s * s) / s).mul_(s) if s > 0 else cond.clone()

    def precond(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(c_skip, c_out, c_in)`` at time ``t``, after EDM's preconditioning (Karras et al. 2022, sec. 5).

        With ``y = x_t - a up(LR)`` (``a = sqrt(1 - sigma_p^2)``), ``r = x_1 - a up(LR)`` of RMS
        ``sigma_data`` and ``eps`` independent: ``y = t r + (1 - t) sigma_p eps`` and
        ``v = r - sigma_p eps``. ``c_skip y`` is the best linear guess of ``v`` from ``y``, ``c_out``
        the RMS of what is left and ``c_in`` makes the backbone's input unit-variance, so the
        backbone learns only the unit-variance remainder at every t.
        """
        d2, s2 = self.cfg.sigma_data**2, self.cfg.sigma_p**2
        var_y = (t * t * d2 + (1 - t) ** 2 * s2).clamp_min(1e-6)
        cov = t * d2 - (1 - t) * s2
        c_skip = cov / var_y
        c_out = (d2 + s2 - cov * cov / var_y).clamp_min(1e-8).sqrt()
        return c_skip, c_out, var_y.rsqrt()

    def velocity(
        self, x_t: torch.Tensor, t: torch.Tensor | float, cond: torch.Tensor, *, start: bool = False
    ) -> torch.Tensor:
        """``v(x_t, t)`` given ``cond = up(LR)``; ``t`` a number, one per image or a per-pixel map.
        ``start``: ``x_t`` is the start state ``x_0`` (a one-step student's call), which weights with
        ``one_step_precond`` precondition as such; weights with it are refused any other state.

        The backbone's contract is kept here, once: ``t`` as ``(B, 1, 1, 1)`` or ``(B, 1, H, W)``,
        sides padded to its size multiple and cropped back, the conditioners' outputs (RCOD's
        visual prompt tokens, made from ``cond`` itself so every caller gets them) passed on.
        """
        B, _, H, W = x_t.shape
        t = time_map(t, B, x_t)
        extra = {"prompt": self.prompt(cond)} if self.cfg.prompt else {}
        m = self.backbone.size_multiple
        ph, pw = (-H) % m, (-W) % m
        if ph or pw or torch.jit.is_tracing():  # a trace (ONNX export) pads every size: its amounts stay symbolic
            pad = lambda z: F.pad(z, (0, pw, 0, ph), mode="replicate")  # noqa: E731
            x_t, cond, t = pad(x_t), pad(cond), pad(t) if t.shape[-1] > 1 else t
        if not self.cfg.precond:
            return self.backbone(x_t, t, cond, **extra)[..., :H, :W]
        y = torch.sub(x_t, cond, alpha=math.sqrt(1.0 - self.cfg.sigma_p**2))  # one pass over the image, not two
        if self.cfg.one_step_precond:  # c_skip = -1, c_out = sigma_data, c_in = 1 / sigma_p at every t
            if not start:
                raise ValueError(ONE_STEP_ONLY)
            f = self.cfg.sigma_data * self.backbone((1.0 / self.cfg.sigma_p) * y, t, cond, **extra)
            return torch.sub(f, y)[..., :H, :W]  # the start noise leaves through the skip
        c_skip, c_out, c_in = self.precond(t.float())
        return torch.addcmul(c_out * self.backbone(c_in * y, t, cond, **extra), c_skip, y)[..., :H, :W]

    def one_step(self, x_0: torch.Tensor, t: torch.Tensor | float, cond: torch.Tensor) -> torch.Tensor:
        """The one-step output ``x_0 + v(x_0, t)``: a student's upscale at dial ``t`` (a number, one per
        image, or a per-pixel map), the teacher's posterior mean at ``t = 0``."""
        return x_0 + self.velocity(x_0, t, cond, start=True)

    def at_realism(
        self,
        x_0: torch.Tensor,
        t: torch.Tensor | float,
        cond: torch.Tensor,
        *,
        one_step: bool,
        steps: int = 1,
        sampler: str = "euler",
    ) -> torch.Tensor:
        """The output at realism ``t`` (a number, or a per-pixel map ``(B, 1, H, W)``).

        A one-step student (``one_step``, OFTSR): ``t`` is its time input, ``x_0 + v(x_0, t)``. A
        multi-step flow (the teacher): the posterior mean ``x_0 + v(x_0, 0)`` (highest PSNR) at 0,
        the ``steps``-step ODE sample at 1, blended between; the mean is the sampler's first
        prediction (``denoised`` at step 0), so the dial costs no extra network evaluation.
        """
        if one_step:
            return self.one_step(x_0, t, cond)
        if self.cfg.one_step_precond:
            raise ValueError(ONE_STEP_ONLY)
        if steps == 1 or (not isinstance(t, torch.Tensor) and t == 0):
            return self.one_step(x_0, 0.0, cond)
        first: dict[str, torch.Tensor] = {}
        sample = SAMPLERS[sampler](
            self.velocity, x_0, time_grid(steps), cond=cond, callback=lambda d: first.setdefault("mean", d["denoised"])
        )
        return first["mean"] + t * (sample - first["mean"])

    def realism_map(self, cond: torch.Tensor) -> torch.Tensor:
        """RCOD's estimate of the dial for each region of ``cond = up(LR)``: ``(B, 1, H, W)`` in [0, 1]."""
        if not self.cfg.estimator:
            raise ValueError("these weights have no realism estimator (trained without rcod.estimator)")
        level = self.encode(cond)[1].float()
        k = self.cfg.estimator_smooth
        for _ in range(2 if k > 1 else 0):  # two box passes: a smooth, positive kernel
            level = F.avg_pool2d(F.pad(level, (k // 2, (k - 1) // 2) * 2, mode="replicate"), k, stride=1)
        return F.interpolate(level, size=cond.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)

    forward = velocity

    # -- training --------------------------------------------------------------
    def loss(
        self,
        lr: torch.Tensor,
        hr: torch.Tensor,
        *,
        t: torch.Tensor | None = None,
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Conditional flow matching: ``|| f(x_t, t, up(LR)) - (x_1 - x_0) ||^2``, t ~ U[0, 1]."""
        if self.cfg.one_step_precond:
            raise ValueError("flow matching trains a multi-step flow: flow.one_step_precond is for one-step students")
        cond = self.condition(lr)
        if eps is None:
            eps = torch.randn(hr.shape, generator=generator, device="cpu").to(hr)
        if t is None:
            t = torch.rand(hr.shape[0], generator=generator, device="cpu").to(hr)
        ps = self.path.sample(x_0=self.start(cond, eps), x_1=hr, t=t)
        v = self.velocity(ps.x_t, t, cond)
        return F.mse_loss(v.float(), ps.dx_t.float())

    # -- inference -------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        lr: torch.Tensor,
        *,
        steps: int = 1,
        sampler: str = "euler",
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        t_end: float = 1.0,
        callback=None,
    ) -> torch.Tensor:
        """Integrate the ODE from ``x_0`` to ``t_end`` in ``steps`` steps; one step is ``x_0 + v``."""
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
        cond = self.condition(lr)
        if eps is None:
            eps = torch.randn(cond.shape, generator=generator, device="cpu").to(cond)
        x = self.start(cond, eps)
        return SAMPLERS[sampler](self.velocity, x, time_grid(steps, t_end), cond=cond, callback=callback)
