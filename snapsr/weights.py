"""Self-describing weights: safetensors tensors + a JSON config, in the file's metadata and beside it.

Loading never unpickles anything: the architecture is rebuilt from the config.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from snapsr import atomic
from snapsr.config import FlowConfig, from_dict, to_dict

FORMAT = "snapsr/1"


def save(path: str | Path, model: torch.nn.Module, card: dict) -> Path:
    """Write ``model.state_dict()`` and ``card`` (must hold ``flow``: a FlowConfig dict) atomically."""
    path = Path(path)
    card = {"format": FORMAT, **card}
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic.write(path, lambda f: f.write(save_bytes(tensors, metadata={"snapsr": json.dumps(card)})))
    atomic.write(path.with_suffix(".json"), lambda f: f.write((json.dumps(card, indent=2) + "\n").encode()))
    return path


def read_card(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "snapsr" not in meta:
        raise ValueError(f"{path} is not a snapsr weights file (no 'snapsr' metadata)")
    return json.loads(meta["snapsr"])


def load_flow(path: str | Path, device="cpu"):
    """A FlowSR rebuilt from the file's config with its tensors loaded; returns ``(model, card)``."""
    from snapsr.flow import FlowSR

    card = read_card(path)
    model = FlowSR(from_dict(FlowConfig, card["flow"]))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.to(device).eval(), card


def init_from(flow, path: str | Path, match=("backbone", "scale"), hint: str = "") -> None:
    """Load a weights file's tensors into ``flow`` (fine-tuning); the ``match`` fields of both configs
    must agree (``hint`` says how to make them)."""
    src, _ = load_flow(path)
    for key in match:
        if getattr(src.cfg, key) != getattr(flow.cfg, key):
            raise ValueError(
                f"init: {path} has {key}={getattr(src.cfg, key)!r}, the config {key}={getattr(flow.cfg, key)!r}"
                + (f" ({hint})" if hint else "")
            )
    flow.load_state_dict(src.state_dict())


def flow_card(cfg: FlowConfig, **extra) -> dict:
    return {"flow": to_dict(cfg), **extra}


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
