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


def clean_stale(folder: str | Path) -> int:
    """Remove the temporary files killed writers left in ``folder`` (``.name.PID.tmp`` whose process
    is gone); returns how many. A live writer's file (another run in the same folder) is left alone."""
    folder = Path(folder)
    removed = 0
    if not folder.is_dir():
        return 0
    for tmp in folder.glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if alive(int(parts[1])):  # this process included: another thread may be writing it
            continue
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
