"""Process-level tuning for fast CPU work: transparent huge pages for large tensors, heap reuse for small jobs.

PyTorch allocates every large activation with ``malloc``; glibc serves blocks above its mmap
threshold with fresh pages and returns them on ``free``, so each layer of each tile faults its
output in again, 4 KiB at a time. With huge pages each fault maps 2 MiB. Measured on this
repository's 2-core CPU, eight one-step x4 upscales of 333x444 to 600x800 LR images in bf16:
43.9 s -> 29.0 s at the same peak memory (1448 vs 1445 MB). Keeping freed blocks in the heap
instead (``mallopt``) was faster still (18.4 s) but doubled peak memory, so it is not used.

Until session 9 the command line re-executed itself with glibc's ``glibc.malloc.hugetlb=1``
tunable, which glibc reads only at process start: a second interpreter start that cost about
0.2 s of a 3.3 s two-photo upscale. PyTorch's own CPU allocator does the same for its blocks of
2 MiB and more (2 MiB-aligned, ``madvise(MADV_HUGEPAGE)``) when ``THP_MEM_ALLOC_ENABLE=1`` is in
the environment at its first allocation, so ``enable_hugepages`` sets that before torch is
imported, in the same process (two 800x600 photos: 14.2 and 13.2 s against 15.1 and 14.7 s without
huge pages and 14.2 and 15.3 s with the old re-exec; two 512x384 photos: 3.2-3.4 s against
3.5-3.6 s with the re-exec; AMD EPYC, 2 cores). Only on Linux with the kernel's THP mode
``madvise`` (``always`` needs nothing); ``SNAPSR_NO_HUGEPAGES=1`` or a ``THP_MEM_ALLOC_ENABLE``
already set leaves it alone. A library caller sets the variable itself before importing torch.

Session 20 measured it again (2-core AMD EPYC, a freshly booted machine, 6 and 2 runs each, the
fast tier, balanced tiles): two 512x384 photos 4.0-4.3 s with huge pages against 3.5-3.7 s
without, two 800x600 10.0-10.5 s against 9.0-9.3 s, one 1536x1024 16.1 s against 18.2 s. Each
huge-page fault zeroes 2 MiB, and a small job touches too little memory for the fewer faults to pay
for that, so ``snapsr upscale`` asks for them only when an input has ``HUGEPAGES_FROM`` pixels
or more (read from the image headers before torch is imported); the other commands always ask.

Session 21: below that size ``snapsr upscale`` keeps freed blocks in the heap instead
(``keep_freed_blocks``: glibc's ``mallopt``, no mmap for large blocks, no trimming), so that each
layer's output reuses memory already faulted in. Most of a small job's large blocks are a little
over glibc's largest mmap threshold (32 MiB): an HR-size float32 image of a 512x384 photo is 38 MB
and so was each FiLM's output, and every one of them came back as fresh pages. Two 512x384 photos
(whole command, 2-core AMD EPYC, 4 alternating runs each): default 4.50-4.73 s -> 4.24-4.34 s,
fast tier 3.41-3.58 s -> 3.24-3.33 s, peak memory 0.97-1.00 GB -> 1.03-1.09 GB; two 800x600 photos
7.24 -> 6.98 s at 1.11 -> 1.29 GB; eight mixed photos up to 900x700 13.7 -> 13.2 s at 1.42 -> 1.49
GB. (The first measurement above saw peak memory double this way, on eight 600x800 photos with
the tiles of the time; these runs did not, so it stays off for the large jobs that get huge pages.)
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_quick_exit = False
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool): see cpu_pool
_pool_lock = threading.Lock()

VARIABLE = "THP_MEM_ALLOC_ENABLE"
HUGEPAGES_FROM = 1_000_000  # LR pixels of a job's largest image from which huge pages pay off
_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def thp_mode() -> str | None:
    """The kernel's transparent-huge-page mode (``always``, ``madvise``, ``never``), or None."""
    try:
        text = _THP.read_text()
    except OSError:
        return None
    return next((w[1:-1] for w in text.split() if w.startswith("[")), None)


def wants_hugepages(env: dict, platform: str, thp: str | None) -> bool:
    """Whether asking PyTorch's allocator for huge pages would change anything here."""
    if env.get("SNAPSR_NO_HUGEPAGES") or VARIABLE in env:
        return False
    return platform.startswith("linux") and thp == "madvise"


def enable_hugepages() -> bool:
    """Ask PyTorch's CPU allocator for huge pages, where the kernel would give them; call before
    torch is imported (its allocator reads the variable once). Whether a job is large enough for
    them to pay is ``tune_memory``'s choice. Returns whether it was set."""
    if "torch" in sys.modules or not wants_hugepages(dict(os.environ), sys.platform, thp_mode()):
        return False
    os.environ[VARIABLE] = "1"
    return True


def keep_freed_blocks() -> bool:
    """Keep freed memory in the process's heap for reuse instead of returning it to the kernel
    (glibc ``mallopt``: ``M_MMAP_MAX`` 0, ``M_TRIM_THRESHOLD`` 2 GiB), for jobs too small for huge
    pages (see the module's docstring). Any time before the large allocations; a no-op returning
    False off glibc or with ``SNAPSR_NO_HEAP_REUSE=1``."""
    import ctypes
    import platform

    if os.environ.get("SNAPSR_NO_HEAP_REUSE") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # malloc.h
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1


def tune_memory(largest_image: int | None) -> str:
    """``snapsr upscale``'s choice before torch is imported: huge pages for a job with an image of
    ``HUGEPAGES_FROM`` pixels or more (or of unknown size), freed blocks kept in the heap below.
    Returns ``"hugepages"``, ``"heap"`` or ``""`` (neither applies here)."""
    if largest_image is None or largest_image >= HUGEPAGES_FROM:
        return "hugepages" if enable_hugepages() else ""
    return "heap" if keep_freed_blocks() else ""


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bf16 fast (oneDNN's test: AMX or AVX-512 bf16); inference and training both ask."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def exit_quickly() -> None:
    """Ask ``snapsr.cli.entry`` to end the process with ``os._exit`` when the command returns.

    An interpreter that has imported torch spends 0.3-0.4 s tearing its modules down at exit
    (``python -c "import torch"``: 1.30-1.40 s, 0.99-1.04 s ending in ``os._exit``; 2-core AMD EPYC),
    a tenth of a two-photo ``snapsr upscale``. A command asks for this once nothing it started
    needs a clean shutdown: its outputs are written, closed and renamed (``atomic.write``), and it
    holds no child processes. ``entry`` flushes stdout, stderr and logging first."""
    global _quick_exit
    _quick_exit = True


def quick_exit_requested() -> bool:
    """Asked for, and no profiler or tracer (cProfile, coverage) waits for the interpreter's exit."""
    return _quick_exit and sys.getprofile() is None and sys.gettrace() is None


def quick_exit(code) -> None:
    """``sys.exit(code)``'s status without the interpreter's teardown (see ``exit_quickly``)."""
    import logging

    if code is not None and not isinstance(code, int):  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more to say there
            pass
    os._exit(code or 0)


def cpu_pool() -> ThreadPoolExecutor | None:
    """Workers for CPU work that releases the GIL, one per intra-op thread of torch (at most 8), each
    running torch ops on one thread: the position noise's bands (``tiling.position_noise``; its ~25
    passes then need no OpenMP barrier, which beside another busy process such as training waits for
    a descheduled thread at every pass: 0.36-0.59 s per 3 MP against 0.13-0.19 s so; idle 0.11
    against 0.10) and a PNG's compression (``imagewrite``). None where torch has one thread; a fresh
    pool in a forked child (the parent's threads are not there)."""
    global _pool
    import torch

    n = min(torch.get_num_threads(), 8)
    if n <= 1:
        return None
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != n:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].shutdown(wait=False)  # the thread count changed: its idle workers go
            _pool = (
                os.getpid(),
                n,
                ThreadPoolExecutor(n, "snapsr-cpu", initializer=torch.set_num_threads, initargs=(1,)),
            )
        return _pool[2]
