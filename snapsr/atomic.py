"""Atomic file writes: a temporary file beside the target, flushed to disk, then renamed.

A kill at any moment leaves the old file or the new one, never half of one, and no
temporary file when the writer fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write(path: str | Path, writer: Callable[[BinaryIO], object]) -> Path:
    """Call ``writer(f)`` on a binary file that becomes ``path`` only once complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
