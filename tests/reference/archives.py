"""Reading reference code out of downloaded packages: unpack an archive beside itself, and load a
source file by path under its real module name (package ``__init__`` files, which import much
more, are never run)."""

from __future__ import annotations

import importlib.util
import sys
import tarfile
import zipfile
from pathlib import Path


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def extract(archive: str | Path, marker: str) -> Path:
    """A ``.tar.gz`` or wheel's contents beside it (once); the folder holding the shallowest ``marker``."""
    archive = Path(archive)
    name = archive.name.removesuffix(".tar.gz").removesuffix(".whl")
    out = archive.parent / f"{name}-extracted"
    if not out.is_dir():
        tmp = out.with_name(out.name + ".tmp")
        if archive.name.endswith(".tar.gz"):
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        else:
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        tmp.rename(out)
    hits = sorted(out.rglob(marker), key=lambda p: (len(p.parts), p))  # pyiqa's wheel also holds a build/ copy
    if not hits:
        raise FileNotFoundError(f"no {marker} in {archive}")
    return hits[0].parent
