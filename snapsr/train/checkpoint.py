"""Training checkpoints: written atomically, read without unpickling code (``weights_only``)."""

from __future__ import annotations

from pathlib import Path

import torch

from snapsr import atomic
from snapsr.errors import first_line


def save(path: str | Path, state: dict) -> None:
    atomic.write(path, lambda f: torch.save(state, f))


def load(path: str | Path) -> dict:
    """The checkpoint's state; a damaged file, or one that holds anything but tensors and plain
    values (a pickle with code), is a one-line ``ValueError`` naming it, and nothing of it runs."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError (zip), EOFError, ...
        raise ValueError(f"{path}: not a readable snapsr checkpoint ({first_line(e)})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a snapsr checkpoint (holds a {type(state).__name__}, not a dict)")
    return state
