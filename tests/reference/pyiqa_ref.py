"""Load pyiqa 0.1.16's own MUSIQ, MANIQA and CLIP-IQA code from its wheel, for conformance tests.

pyiqa, timm and OpenAI's ``clip`` import torchvision, which cannot be installed beside our torch;
none of the code paths compared here uses it, so a stand-in module answers those imports while
the reference is loaded. pyiqa's package ``__init__`` files import much of the library, so only
the files these metrics need are loaded, by path, under their real module names. The source is
pyiqa's, timm's and OpenAI's, read at test time from the downloaded packages; none of it is part
of snapsr.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import pytest


class _Anything(type):
    """A class whose every attribute is another such class: enough for import-time references."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        sub = _Anything(name, (), {})
        setattr(cls, name, sub)
        return sub


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        sub = _Anything(name, (), {})
        setattr(self, name, sub)
        return sub


_TORCHVISION = (
    "transforms",
    "transforms.functional",
    "transforms.v2",
    "transforms.v2.functional",
    "ops",
    "ops.misc",
    "models",
    "models.feature_extraction",
    "datasets",
    "io",
    "utils",
    "tv_tensors",
)


def _stub_torchvision(mp: pytest.MonkeyPatch) -> None:
    mods = {"torchvision": _StubModule("torchvision")}
    for sub in _TORCHVISION:
        mods[f"torchvision.{sub}"] = _StubModule(f"torchvision.{sub}")
    for name, mod in mods.items():
        mod.__path__ = []
        mp.setitem(sys.modules, name, mod)
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(mods[parent], child, mod)


def _extract(archive: str | Path, marker: str) -> Path:
    """An archive's contents beside it (once); returns the folder holding ``marker``."""
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


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _package(mp: pytest.MonkeyPatch, name: str, path: Path) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)]
    mp.setitem(sys.modules, name, mod)
    return mod


def clip_tokenizer_module(clip_sdist: str | Path):
    """OpenAI's ``clip/simple_tokenizer.py`` (needs ftfy and regex) and its merges file."""
    root = _extract(clip_sdist, "simple_tokenizer.py")
    return _load("clip_reference_tokenizer", root / "simple_tokenizer.py"), root / "bpe_simple_vocab_16e6.txt.gz"


def load(mp: pytest.MonkeyPatch, pyiqa_wheel, timm_wheel, clip_sdist) -> types.SimpleNamespace:
    """pyiqa's ``MUSIQ``, ``MANIQA`` and ``CLIPIQA`` classes and timm's ``VisionTransformer``.
    The stand-ins live as long as ``mp``."""
    pytest.importorskip("einops", reason="pip install -e .[conformance]")
    pytest.importorskip("ftfy", reason="pip install -e .[conformance]")
    import packaging.version

    mp.syspath_prepend(str(_extract(clip_sdist, "clip.py").parent))
    mp.syspath_prepend(str(_extract(timm_wheel, "vision_transformer.py").parents[1]))
    _stub_torchvision(mp)
    pkg_resources = types.ModuleType("pkg_resources")  # clip.py takes ``packaging`` from it
    pkg_resources.packaging = packaging
    mp.setitem(sys.modules, "pkg_resources", pkg_resources)
    for name in [m for m in sys.modules if m.split(".")[0] in ("timm", "clip")]:
        mp.delitem(sys.modules, name)

    src = _extract(pyiqa_wheel, "musiq_arch.py").parent  # .../pyiqa
    for pkg in ("pyiqa", "pyiqa.utils", "pyiqa.archs", "pyiqa.data", "pyiqa.matlab_utils"):
        _package(mp, pkg, src.joinpath(*pkg.split(".")[1:]))
    download = types.ModuleType("pyiqa.utils.download_util")

    def no_download(*args, **kwargs):
        raise RuntimeError("the conformance test must not download")

    download.load_file_from_url = no_download
    mp.setitem(sys.modules, "pyiqa.utils.download_util", download)
    _load("pyiqa.utils.registry", src / "utils" / "registry.py")
    padding = _load("pyiqa.matlab_utils.padding", src / "matlab_utils" / "padding.py")
    sys.modules["pyiqa.matlab_utils"].ExactPadding2d = padding.ExactPadding2d
    sys.modules["pyiqa.matlab_utils"].exact_padding_2d = padding.exact_padding_2d
    _load("pyiqa.data.multiscale_trans_util", src / "data" / "multiscale_trans_util.py")
    _load("pyiqa.archs.constants", src / "archs" / "constants.py")
    _load("pyiqa.archs.arch_util", src / "archs" / "arch_util.py")
    musiq = _load("pyiqa.archs.musiq_arch", src / "archs" / "musiq_arch.py")
    maniqa = _load("pyiqa.archs.maniqa_arch", src / "archs" / "maniqa_arch.py")
    _load("pyiqa.archs.clip_imports", src / "archs" / "clip_imports.py")
    _load("pyiqa.archs.clip_model", src / "archs" / "clip_model.py")
    clipiqa = _load("pyiqa.archs.clipiqa_arch", src / "archs" / "clipiqa_arch.py")
    vit = importlib.import_module("timm.models.vision_transformer")
    return types.SimpleNamespace(
        MUSIQ=musiq.MUSIQ, MANIQA=maniqa.MANIQA, CLIPIQA=clipiqa.CLIPIQA, VisionTransformer=vit.VisionTransformer
    )
