"""Where learned metrics find their weights: one folder the user gives, nothing downloaded."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch

Folders = Path | Sequence[Path]


def default_folders() -> list[Path]:
    """Where pyiqa and OpenAI's ``clip`` package keep the files they download, so that a user of
    either needs no ``--metric-weights``; and the installed ``clip`` package (its BPE merges)."""
    hub = Path(torch.hub.get_dir())
    out = [hub / "pyiqa", hub / "clip", Path.home() / ".cache" / "clip"]
    spec = importlib.util.find_spec("clip")  # finds the package without importing it
    if spec is not None and spec.origin:
        out.append(Path(spec.origin).parent)
    return out


def need(folders: Folders, name: str, what: str, metric: str) -> Path:
    """The first ``folder/name`` that exists, or an error naming the file, what it is, and where we looked."""
    folders = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    where = ", ".join(str(f) for f in folders)
    raise FileNotFoundError(f"{metric} needs {name} ({what}) in {where}")


def load_state_dict(path: Path, metric: str) -> dict[str, torch.Tensor]:
    """Tensors only (``weights_only``): a checkpoint that pickles code is refused with a clear message."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{metric}: {path} is not a plain state dict of tensors ({e})") from e
    for key in ("params", "state_dict", "model"):  # the usual wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{metric}: {path} holds a {type(sd).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}  # saved from DataParallel
