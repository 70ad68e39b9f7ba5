"""Finding and reading images: every format Pillow reads, recursively, failures by name."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


class ImageReadError(Exception):
    """A file that is not a readable image; the message names the file."""


def list_files(root: str | Path, recursive: bool = True) -> list[Path]:
    """Every non-hidden regular file under ``root``, sorted; no extension filter (Pillow decides)."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"no such file or folder: {root}")
    out = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out += [Path(dirpath) / f for f in filenames if not f.startswith(".")]
    else:
        out = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(out)


def read_rgb(path: str | Path) -> np.ndarray:
    """``HxWx3`` uint8 RGB with EXIF orientation applied; ImageReadError names a bad file."""
    try:
        with Image.open(path) as im:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB")).copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e})") from e


def to_tensor(img: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255)


def save_png(tensor, path: str | Path) -> None:
    """``(3,H,W)`` float in [0, 1] -> PNG, written atomically."""
    arr = (tensor.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    os.replace(tmp, path)
