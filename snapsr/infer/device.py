"""Where inference runs and in which precision: ``auto`` picks what is fast on this machine.

On a CPU with bf16 instructions (AMX or AVX-512 bf16) ``auto`` measures once which of fp32 and
bf16 runs the model faster here, and keeps the answer in ``~/.cache/snapsr/dtype.json`` (under
``$XDG_CACHE_HOME`` when set), keyed by CPU, torch version, threads and architecture: CPUs differ too
much for one rule (bf16 was 2.1x faster than fp32 on a 2-core AMD EPYC without AMX).

Training has its own rule (``train.engine.resolve_precision``): it trains in bf16 on recent GPUs,
where inference of our small nets is faster in fp32 (TF32).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from snapsr.runtime import cpu_supports_bf16


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but no CUDA device is available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("--device mps was asked for, but MPS is not available")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device, model=None) -> torch.dtype:
    """``auto``: on the CPU, the faster of fp32 and bf16 for ``model`` (measured once, cached; bf16
    only where the CPU has it; without a model, bf16 where it has it); fp16 on MPS; fp32 on CUDA
    (our small convolutional nets ran faster in fp32, which uses TF32 tensor cores, than under
    bf16 autocast on an H100)."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.float32
        if device.type == "cpu":
            if not cpu_supports_bf16():
                return torch.float32
            return fastest_cpu_dtype(model) if isinstance(model, torch.nn.Module) else torch.bfloat16
        return torch.float16 if device.type == "mps" else torch.float32
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype not in table:
        raise ValueError(f"dtype must be auto, fp32, bf16 or fp16; got {dtype!r}")
    if dtype == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is not supported on the CPU; use bf16 or fp32")
    return table[dtype]


def cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "snapsr" / "dtype.json"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def fastest_cpu_dtype(model: torch.nn.Module) -> torch.dtype:
    """fp32 or bf16, whichever ran ``model``'s one step faster on this CPU (cached per machine)."""
    cfg = getattr(model, "cfg", None)
    arch = f"{getattr(cfg, 'backbone', type(model).__name__)} x{getattr(cfg, 'scale', '?')}"
    key = f"{cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads | {arch}"
    path = cache_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known and known[key].get("dtype") in ("fp32", "bf16"):
        return torch.float32 if known[key]["dtype"] == "fp32" else torch.bfloat16
    seconds = {name: _time_one_step(model, dt) for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    choice = min(seconds, key=seconds.get)
    known[key] = {"dtype": choice, "seconds_per_tile": {k: round(v, 4) for k, v in seconds.items()}}
    try:
        from snapsr import atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write(path, lambda f: f.write(json.dumps(known, indent=1).encode()))
    except OSError:  # a read-only home: measure again next time
        pass
    return torch.float32 if choice == "fp32" else torch.bfloat16


@torch.no_grad()
def _time_one_step(model, dtype: torch.dtype, side: int = 48, repeats: int = 3) -> float:
    """Best of ``repeats`` one-step passes on a ``side``-pixel LR tile (after a warm-up)."""
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(1, 3, side, side, generator=g)
    cond = model.condition(lr)
    x_0 = model.start(cond, torch.randn(cond.shape, generator=g))
    best = float("inf")
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            model.one_step(x_0, 0.5, cond)
            if i:
                best = min(best, time.perf_counter() - t0)
    return best
