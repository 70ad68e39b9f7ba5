"""Load BasicSR 1.4.2's own metric functions from its source distribution, for conformance tests.

BasicSR's package ``__init__`` files import much of the library (torchvision among it), so
this loads only the files the metrics need, by path, under their real module names. The
source is BasicSR's, read at test time from the sdist; none of it is part of snapsr.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from .archives import extract, load_module


def find_sdist_root(location: str | Path) -> Path:
    """An extracted ``basicsr-1.4.2`` folder, or a ``basicsr-1.4.2.tar.gz`` (extracted beside it)."""
    p = Path(location)
    if p.is_file() and p.name.endswith(".tar.gz"):
        p = extract(p, "psnr_ssim.py").parents[1]  # .../basicsr-1.4.2/basicsr/metrics -> basicsr-1.4.2
    if not (p / "basicsr" / "metrics" / "psnr_ssim.py").is_file():
        raise FileNotFoundError(f"no BasicSR source under {p}")
    return p


def load(root: str | Path) -> types.SimpleNamespace:
    """``calculate_psnr``, ``calculate_ssim`` and ``calculate_niqe`` of BasicSR."""
    src = find_sdist_root(root) / "basicsr"
    for pkg in ("basicsr", "basicsr.utils", "basicsr.metrics"):
        m = types.ModuleType(pkg)
        m.__path__ = [str(src / pkg.replace("basicsr", "").strip(".").replace(".", "/"))]
        sys.modules[pkg] = m
    color = load_module("basicsr.utils.color_util", src / "utils" / "color_util.py")
    sys.modules["basicsr.utils"].bgr2ycbcr = color.bgr2ycbcr
    load_module("basicsr.utils.registry", src / "utils" / "registry.py")
    load_module("basicsr.utils.matlab_functions", src / "utils" / "matlab_functions.py")
    load_module("basicsr.metrics.metric_util", src / "metrics" / "metric_util.py")
    ps = load_module("basicsr.metrics.psnr_ssim", src / "metrics" / "psnr_ssim.py")
    nq = load_module("basicsr.metrics.niqe", src / "metrics" / "niqe.py")
    return types.SimpleNamespace(
        calculate_psnr=ps.calculate_psnr, calculate_ssim=ps.calculate_ssim, calculate_niqe=nq.calculate_niqe
    )
