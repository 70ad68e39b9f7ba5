"""A weights file's model card, typed: what loaders act on is a checked field, the rest a record.

The card travels as JSON in the safetensors metadata (and beside it, ``NAME.json``). The fields
below are everything inference reads (the architecture, the kind of model, its default steps and
dial value); the training record (recipe, data, degradations, samples, hours, lineage, metrics)
is kept whole in ``record`` for ``snapsr models`` and for people, never for code paths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapsr.config import from_dict, to_dict
from snapsr.errors import first_line
from snapsr.model.config import FlowConfig

MAX_DEFAULT_STEPS = 1000
KINDS = ("teacher", "student", "")  # "": a card older than the field


@dataclass(frozen=True)
class ModelCard:
    flow: FlowConfig
    kind: str = ""  # teacher: a multi-step flow (the dial blends); student: one step, the dial is t
    name: str = ""
    default_steps: int = 1
    # The dial value every caller gets without naming one: a number in [0, 1], or "auto" (the
    # model's RCOD estimator sets it per region) for a model that has an estimator.
    default_realism: float | str = 0.5
    record: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def student(self) -> bool:
        return self.kind == "student"

    @property
    def scale(self) -> int:
        return self.flow.scale

    # What a caller may ask of the model, from its architecture: colour in and out (grey and alpha
    # are the upscaler's business), the precisions inference runs in, and whether tiles give the
    # whole-image result (LRNet: yes, its receptive field fits the overlap; a Stable Diffusion prior's
    # GroupNorm and attention see one tile at a time: close, not equal).
    channels: int = field(default=3, init=False)
    dtypes: tuple[str, ...] = field(default=("fp32", "bf16", "fp16"), init=False)

    @property
    def tiles_exactly(self) -> bool:
        return not self.flow.backbone.startswith("sd_")

    @classmethod
    def parse(cls, card: Any, path: str | Path = "weights") -> ModelCard:
        """Every field a loader acts on, checked and in bounds, before anything is built from it; any
        problem is a one-line ``ValueError`` naming ``path``."""
        if not isinstance(card, dict):
            raise ValueError(f"{path}: its model card is a JSON {type(card).__name__}, not an object")
        flow = card.get("flow")
        if not isinstance(flow, dict):
            raise ValueError(f"{path}: its model card has no 'flow' object (the architecture)")
        try:
            cfg = from_dict(FlowConfig, flow, "flow")
        except (ValueError, TypeError, OverflowError, AttributeError) as e:
            raise ValueError(f"{path}: bad model card: {first_line(e)}") from None
        from snapsr.model.backbones import registry

        if cfg.backbone not in registry.names():
            raise ValueError(f"{path}: unknown backbone {cfg.backbone!r} (known: {', '.join(registry.names())})")
        steps = card.get("default_steps", 1)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_DEFAULT_STEPS:
            raise ValueError(f"{path}: default_steps must be an integer in [1, {MAX_DEFAULT_STEPS}], got {steps!r}")
        realism = card.get("default_realism", 0.5)
        if realism == "auto":
            if not cfg.estimator:
                raise ValueError(f"{path}: default_realism 'auto' needs a model with a realism estimator")
        elif isinstance(realism, bool) or not isinstance(realism, (int, float)) or not 0 <= realism <= 1:
            raise ValueError(f"{path}: default_realism must be a number in [0, 1] or 'auto', got {realism!r}")
        else:
            realism = float(realism)
        kind, name = card.get("kind", ""), card.get("name", "")
        if not isinstance(kind, str) or kind not in KINDS:
            raise ValueError(f"{path}: kind must be 'teacher' or 'student', got {kind!r}")
        if not isinstance(name, str):
            raise ValueError(f"{path}: name must be a string, got {name!r}")
        typed = {"flow", "kind", "name", "default_steps", "default_realism"}
        record = {k: v for k, v in card.items() if k not in typed}
        return cls(cfg, kind, name, steps, realism, record)

    def to_dict(self) -> dict[str, Any]:
        """The card as written to the file: the typed fields (those with values) and the record."""
        out: dict[str, Any] = {"flow": to_dict(self.flow)}
        if self.kind:
            out["kind"] = self.kind
        if self.name:
            out["name"] = self.name
        out.update(default_steps=self.default_steps, default_realism=self.default_realism)
        return {**out, **self.record}


def from_metadata(meta: dict, path: str | Path, what: str) -> dict:
    """The card JSON a weights file (``what``: "weights file", "ONNX model") keeps under ``snapsr``
    in its metadata, checked; a missing or broken card is a one-line ``ValueError`` naming the file."""
    if "snapsr" not in meta:
        raise ValueError(f"{path} is not a snapsr {what} (no 'snapsr' metadata)")
    try:
        card = json.loads(meta["snapsr"])
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: its model card is not valid JSON ({e})") from None
    ModelCard.parse(card, path)
    return card
