"""The flow's configuration: what a weights card needs to rebuild the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENCODER_INPUTS = ("image", "energy")


@dataclass(frozen=True)
class FlowConfig:
    """The conditional rectified flow of OFTSR: up(LR) + noise -> HR."""

    scale: int = 4
    sigma_p: float = 0.2  # start-state noise; OFTSR uses 0.1-0.5
    backbone: str = "lrnet_s"  # a name in snapsr.model.backbones.registry
    # The backbone's own hyperparameters, e.g. for sd_latent {prior = "DIR", lora_rank = 8}
    backbone_args: dict[str, Any] = field(default_factory=dict)
    # Preconditioning (FlowSR.precond): the RMS of HR - up(LR), measured at about 0.07 on
    # photos under the second-order degradations at x4 (0.03 under bicubic).
    precond: bool = True
    sigma_data: float = 0.07
    # A one-step student's preconditioning (FlowSR.velocity with ``start``): its state is always the
    # start x_0, so y = x_0 - a up(LR) is the noise sigma_p eps alone at every dial value, and the best
    # linear guess of v = r - sigma_p eps from it is -y whatever t is (c_skip = -1, c_out = sigma_data,
    # c_in = 1 / sigma_p). EDM's coefficients assume y = t r + (1 - t) sigma_p eps, the teacher's state:
    # for a student at t = 1 their skip adds sigma_p eps where it should take it away, and the backbone
    # must cancel 2 sigma_p eps (51 levels of 255 at sigma_p 0.1) pixel by pixel; what it misses is the
    # realistic end's grain. Students only: a multi-step flow's states are not x_0.
    one_step_precond: bool = False
    # RCOD (snapsr/model/backbones/prompt.py): visual prompt injection, and the realism estimator
    # behind ``--realism auto``; both share one small degradation-aware encoder.
    prompt: bool = False
    estimator: bool = False
    prompt_tokens: int = 16
    prompt_dim: int = 64
    # What the encoder reads: "image", the LR itself; "energy", the log of its local energy in two
    # frequency bands per channel (prompt.local_energy): what tells a clean photo from a degraded
    # one, which the image alone did not teach the estimator (it predicted one value for all).
    encoder_input: str = "image"
    # RCOD's visual prompt as published: tokens from a frozen CLIP image encoder of the LQ image (a
    # local CLIP folder, never bundled or downloaded), beside the degradation encoder's; needs prompt.
    prompt_clip: str = ""
    # ``--realism auto``'s map smoothed before use: a box filter this many estimator cells wide
    # (4 LR pixels each), run twice; 0 for none. Degradation varies slowly across a photo, so a
    # thin structure the estimator reads as noisy (a clean horizon) must not get its own dial.
    estimator_smooth: int = 0
    # The estimator's level head: 0 a linear read of the encoder's features, n > 0 n 3x3 convolutions
    # first (``PromptConfig.level_convs``)
    estimator_head: int = 0

    def __post_init__(self):
        # Bounds that keep a hostile or damaged weights card from building a huge model.
        checks = (
            ("scale", 1 <= self.scale <= 8, "an integer in [1, 8]"),
            ("sigma_p", 0.0 <= self.sigma_p < 1.0, "in [0, 1)"),
            ("sigma_data", 0.0 < self.sigma_data <= 1.0, "in (0, 1]"),
            ("prompt_tokens", 1 <= self.prompt_tokens <= 256, "in [1, 256]"),
            ("prompt_dim", 1 <= self.prompt_dim <= 1024, "in [1, 1024]"),
            ("estimator_smooth", 0 <= self.estimator_smooth <= 64, "in [0, 64]"),
            ("estimator_head", 0 <= self.estimator_head <= 4, "in [0, 4]"),
        )
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"flow.{name} must be {what}, got {getattr(self, name)!r}")
        if self.one_step_precond and not (self.precond and self.sigma_p > 0):
            raise ValueError("flow.one_step_precond needs flow.precond and a start noise (sigma_p > 0)")
        if self.encoder_input not in ENCODER_INPUTS:
            raise ValueError(
                f"flow.encoder_input must be one of {', '.join(ENCODER_INPUTS)}; got {self.encoder_input!r}"
            )
        if self.prompt_clip and not self.prompt:
            raise ValueError("flow.prompt_clip gives the visual prompt CLIP tokens: it needs flow.prompt = true")
        plain = (str, int, float, bool)
        args = self.backbone_args
        if not isinstance(args, dict) or not all(
            isinstance(k, str)
            and (isinstance(v, plain) or (isinstance(v, list) and all(isinstance(x, plain) for x in v)))
            for k, v in args.items()
        ):
            raise ValueError(f"flow.backbone_args must be a table of plain values, got {args!r}")
