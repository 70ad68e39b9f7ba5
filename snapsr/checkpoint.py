"""Training checkpoints: written atomically, read without unpickling code (``weights_only``)."""

from __future__ import annotations

from pathlib import Path

import torch

from snapsr import atomic


def save(path: str | Path, state: dict) -> None:
    atomic.write(path, lambda f: torch.save(state, f))


def load(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
