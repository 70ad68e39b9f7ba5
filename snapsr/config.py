"""Frozen dataclass configs and their thin TOML / ``key=value`` override layer.

Every option lives, with its default, in a dataclass here or in the module that
owns the concept (``DegradeConfig`` in ``degrade.py``). Files and command-line
overrides only replace fields; they never add keys the dataclass does not have.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from snapsr.degrade import DegradeConfig

T = TypeVar("T")


@dataclass(frozen=True)
class FlowConfig:
    """The conditional rectified flow of OFTSR: up(LR) + noise -> HR."""

    scale: int = 4
    sigma_p: float = 0.2  # start-state noise; OFTSR uses 0.1-0.5
    backbone: str = "lrnet_s"  # a name in snapsr.nets.registry
    # Preconditioning (FlowSR.precond): the RMS of HR - up(LR), measured at about 0.07 on
    # photos under the second-order degradations at x4 (0.03 under bicubic).
    precond: bool = True
    sigma_data: float = 0.07
    # RCOD (snapsr/nets/prompt.py): visual prompt injection, and the realism estimator
    # behind ``--realism auto``; both share one small degradation-aware encoder.
    prompt: bool = False
    estimator: bool = False
    prompt_tokens: int = 16
    prompt_dim: int = 64

    def __post_init__(self):
        # Bounds that keep a hostile or damaged weights card from building a huge model.
        checks = (
            ("scale", 1 <= self.scale <= 8, "an integer in [1, 8]"),
            ("sigma_p", 0.0 <= self.sigma_p < 1.0, "in [0, 1)"),
            ("sigma_data", 0.0 < self.sigma_data <= 1.0, "in (0, 1]"),
            ("prompt_tokens", 1 <= self.prompt_tokens <= 256, "in [1, 256]"),
            ("prompt_dim", 1 <= self.prompt_dim <= 1024, "in [1, 1024]"),
        )
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"flow.{name} must be {what}, got {getattr(self, name)!r}")


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


@dataclass(frozen=True)
class TeacherRunConfig:
    # Weights to start from (fine-tuning, e.g. a teacher trained with another sigma_p);
    # the backbone must match ``flow.backbone``. Empty: random initialisation.
    init: str = ""
    flow: FlowConfig = field(default_factory=FlowConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---------------------------------------------------------------------------
# (de)serialisation


def to_dict(cfg: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (tuple,):
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(args[0], value, where)
    if tp is bool:
        if isinstance(value, str):
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{where}: not a boolean: {value!r}")
        return bool(value)
    if tp in (int, float, str):
        try:
            out = tp(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"{where}: cannot read {value!r} as {tp.__name__}") from e
        if tp is int and isinstance(value, float) and value != out:
            raise ValueError(f"{where}: {value!r} is not an integer")
        return out
    return value


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown config key(s) {sorted(unknown)} in {where or cls.__name__}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}".strip(".")) for k, v in data.items()}
    return cls(**kwargs)


def merge(cfg: T, data: dict, where: str = "") -> T:
    """Return ``cfg`` with the fields in ``data`` (nested dicts for nested configs) replaced."""
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for key, value in data.items():
        if key not in hints:
            raise ValueError(f"unknown config key {f'{where}.{key}'.strip('.')!r}")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = merge(current, value, f"{where}.{key}".strip("."))
        else:
            changes[key] = _coerce(hints[key], value, f"{where}.{key}".strip("."))
    return dataclasses.replace(cfg, **changes)


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict:
    """``["train.lr=1e-4", "flow.backbone=lrnet_b"]`` -> nested dict."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key.path=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def load(cls: type[T], path: str | Path | None = None, overrides=()) -> T:
    """Defaults of ``cls``, then a TOML/JSON file, then ``key=value`` overrides."""
    cfg = cls()
    if path is not None:
        path = Path(path)
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        cfg = merge(cfg, data)
    if overrides:
        cfg = merge(cfg, parse_overrides(overrides))
    return cfg
