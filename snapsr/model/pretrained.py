"""Weights that ship inside the package, by name, with their cards. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

from snapsr.model import weights

FOLDER = Path(__file__).parents[1] / "assets" / "weights"
DEFAULT = "snapsr-x4-dial-s11"


def available() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.safetensors"))


def resolve(name_or_path: str | Path | None) -> Path:
    """A bundled name (``None`` for the default) or a path to a ``.safetensors`` (or ``.onnx``) file."""
    if name_or_path is None:
        name_or_path = DEFAULT
    p = Path(name_or_path)
    if p.suffix in (".safetensors", ".onnx") or p.exists():
        if not p.is_file():
            raise FileNotFoundError(f"weights file not found: {p}")
        return p
    bundled = FOLDER / f"{name_or_path}.safetensors"
    if not bundled.is_file():
        known = ", ".join(available()) or "none"
        raise FileNotFoundError(f"no bundled weights named {name_or_path!r} (bundled: {known}); or give a path")
    return bundled


def card(name_or_path: str | Path | None) -> dict:
    path = resolve(name_or_path)
    return {**weights.read_card(path), "file": str(path), "sha256": weights.sha256(path)}
