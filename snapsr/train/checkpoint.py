"""Training checkpoints: written atomically, read without unpickling code (``weights_only``)."""

from __future__ import annotations

from pathlib import Path

import torch

from snapsr import atomic
from snapsr.config import to_dict
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


def load_resume(path: Path, cfg) -> dict:
    """The checkpoint of a run with the same config as ``cfg`` (one-line ``ValueError`` otherwise)."""
    state = load(path)

    # Only the length and logging of the run may change on resume; anything else is another run.
    def comparable(c: dict) -> dict:
        c = dict(c)
        for section, keys in _RESUMABLE.items():
            c[section] = {k: v for k, v in c.get(section, {}).items() if k not in keys}
        return c

    # Keys added to the config classes since the checkpoint was written count at their defaults.
    same, now = comparable(_over(to_dict(type(cfg)()), state["config"])), comparable(to_dict(cfg))
    if same != now:
        raise ValueError(f"{path} was written by a run with another config; start a new out_dir or match it")
    return state


def _over(base: dict, data: dict) -> dict:
    """``base`` with ``data``'s values (nested tables merged)."""
    out = dict(base)
    for k, v in data.items():
        out[k] = _over(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


_RESUMABLE = {  # what may differ on resume: the run's length, logging, and how batches are loaded (not which)
    "train": {"steps", "log_every", "ckpt_every", "val_every", "out_dir", "max_bad_steps"},
    "data": {"workers"},
}
