"""Process-level tuning for fast CPU work: transparent huge pages for large tensors.

PyTorch allocates every large activation with ``malloc``; glibc serves blocks above its mmap
threshold with fresh pages and returns them on ``free``, so each layer of each tile faults its
output in again, 4 KiB at a time. glibc (2.35+) can ask for transparent huge pages for those
blocks (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``), 2 MiB per fault. Measured on this
repository's 2-core CPU, eight one-step x4 upscales of 333x444 to 600x800 LR images in bf16:
43.9 s -> 29.0 s at the same peak memory (1448 vs 1445 MB). Keeping freed blocks in the heap
instead (``mallopt``) was faster still (18.4 s) but doubled peak memory, so it is not used.

The tunable is read only at process start, so the command-line entry point re-executes itself
once with it set (``snapsr`` and ``python -m snapsr``; never a library caller). It does so only on
Linux with glibc 2.35 or newer and the kernel's THP mode ``madvise``; ``SNAPSR_NO_HUGEPAGES=1`` or
a ``GLIBC_TUNABLES`` that already names ``glibc.malloc.hugetlb`` leaves the process alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb=1"
_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def glibc_version() -> tuple[int, int] | None:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        return None
    if name != "glibc":
        return None
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def thp_mode() -> str | None:
    """The kernel's transparent-huge-page mode (``always``, ``madvise``, ``never``), or None."""
    try:
        text = _THP.read_text()
    except OSError:
        return None
    return next((w[1:-1] for w in text.split() if w.startswith("[")), None)


def wants_hugepages(env: dict, platform: str, glibc: tuple[int, int] | None, thp: str | None) -> bool:
    """Whether a re-exec with the huge-page tunable would change anything here."""
    if env.get("SNAPSR_NO_HUGEPAGES") or "glibc.malloc.hugetlb" in env.get("GLIBC_TUNABLES", ""):
        return False
    return platform.startswith("linux") and glibc is not None and glibc >= (2, 35) and thp == "madvise"


def reexec_with_hugepages() -> None:
    """Replace this process by ``python -m snapsr ARGS`` with the tunable set, where it helps."""
    if not wants_hugepages(dict(os.environ), sys.platform, glibc_version(), thp_mode()):
        return
    old = os.environ.get("GLIBC_TUNABLES", "")
    env = {**os.environ, "GLIBC_TUNABLES": f"{old}:{TUNABLE}" if old else TUNABLE}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "snapsr", *sys.argv[1:]], env)
    except OSError:  # could not re-execute: carry on as we are
        return


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bf16 fast (oneDNN's test: AMX or AVX-512 bf16); inference and training both ask."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
