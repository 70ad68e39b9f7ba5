"""Training checkpoints: written atomically, read without unpickling code (``weights_only``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def save(path: str | Path, state: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # a kill at any moment leaves the old or the new file, never half of one


def load(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
