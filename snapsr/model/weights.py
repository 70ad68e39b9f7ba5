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
from snapsr.config import to_dict
from snapsr.errors import first_line
from snapsr.model.card import ModelCard, from_metadata
from snapsr.model.config import FlowConfig

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
    """The file's card, checked (``check_card``); any damage is a one-line ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - SafetensorError, OSError: a pickle, truncated, empty, bad header
        raise ValueError(f"{path}: not a readable safetensors file ({first_line(e)})") from None
    return from_metadata(meta, path, "weights file")


def check_card(card, path: str | Path = "weights") -> FlowConfig:
    """The card checked (``ModelCard.parse``); returns its FlowConfig."""
    return ModelCard.parse(card, path).flow


def load_flow(path: str | Path, device="cpu"):
    """A FlowSR rebuilt from the file's (checked) config with its tensors loaded; returns ``(model, ModelCard)``.

    Tensors that do not match the config, or hold NaN or Inf, are refused naming the file.
    """
    from snapsr.model.flow import FlowSR

    card = ModelCard.parse(read_card(path), path)
    try:
        model = FlowSR(card.flow)
    except (KeyError, RuntimeError, TypeError) as e:
        raise ValueError(f"{path}: cannot build the model its card describes ({first_line(e)})") from None
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable safetensors file ({first_line(e)})") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or shapes:
        raise ValueError(
            f"{path}: its tensors do not match its config ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(shapes)} of the wrong shape; first: {(missing + unexpected + shapes)[0]})"
        )
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{path}: {len(bad)} tensor(s) hold NaN or Inf values (first: {bad[0]}); damaged weights")
    model.load_state_dict(tensors, strict=True)
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


def lineage(card: dict, limit: int = 20) -> list[dict]:
    """The chain of weights a card was fine-tuned from (its ``init``, that file's ``init``, ...), each
    with its own training record, as far as the files are on disk."""
    out, seen = [], set()
    path = card.get("init")
    while path and path not in seen and len(out) < limit and Path(_moved(path)).is_file():
        path = _moved(path)
        seen.add(path)
        try:
            c = read_card(path)
        except ValueError:
            break
        keep = ("name", "recipe", "steps_trained", "samples_seen", "train_hours", "degradation_mix")
        out.append({"file": str(path), **{k: c[k] for k in keep if k in c}})
        path = c.get("init")
    return out


def _moved(path: str) -> str:
    """Cards written before the bundled weights moved to ``snapsr/assets/weights/`` name the old folder."""
    old = "snapsr/pretrained/"
    return "snapsr/assets/weights/" + path[len(old) :] if path.startswith(old) and not Path(path).exists() else path


def flow_card(cfg: FlowConfig, **extra) -> dict:
    return {"flow": to_dict(cfg), **extra}


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
