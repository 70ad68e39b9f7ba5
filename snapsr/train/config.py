"""Run configurations shared by the training recipes: data, optimisation, and the teacher's run."""

from __future__ import annotations

from dataclasses import dataclass, field

from snapsr.degrade import DegradeConfig
from snapsr.model.config import FlowConfig


@dataclass(frozen=True)
class DataConfig:
    train_dir: str = "../shared/data/photos/train"
    val_dir: str = "../shared/data/photos/val"
    crop: int = 192  # HR crop size; LR crops are crop // scale
    # Extra copies of every HR image downscaled by these factors: more patch
    # variety and sharper HR detail from photos that are soft at full size.
    multiscale: tuple[float, ...] = (1.0,)
    cache: bool = True  # decode every image once and keep it in memory
    workers: int = 0
    val_crop: int = 256  # HR centre crop of each val image for periodic validation
    val_images: int = 4
    # A peer bank (built by ``snapsr train bank``): training pairs are its degraded
    # tiles, and its peer's upscale of each is the anchor target (gtasr only); "" = degrade on the fly.
    peer_bank: str = ""


@dataclass(frozen=True)
class TrainConfig:
    out_dir: str = "runs/teacher"
    steps: int = 20000
    batch_size: int = 16
    lr: float = 2e-4
    min_lr: float = 1e-5
    warmup: int = 500
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    channels_last: bool = True
    seed: int = 0
    log_every: int = 20
    ckpt_every: int = 500
    val_every: int = 1000
    val_steps: tuple[int, ...] = (1, 4)
    max_bad_steps: int = 20  # consecutive non-finite losses before giving up
    # The learning rate of parameters new in this run (a grown backbone's parts, gtasr's ``grow``) is
    # this multiple of ``lr``: a zero-initialised branch barely moves at a fine-tuning rate.
    fresh_lr_mult: float = 1.0


@dataclass(frozen=True)
class TeacherRunConfig:
    # Weights to start from (fine-tuning, e.g. a teacher trained with another sigma_p);
    # the backbone must match ``flow.backbone``. Empty: random initialisation.
    init: str = ""
    flow: FlowConfig = field(default_factory=FlowConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
