"""Where inference runs and in which precision: ``auto`` picks what is fast on this machine.

Training has its own rule (``train.engine.resolve_precision``): it trains in bf16 on recent GPUs,
where inference of our small nets is faster in fp32 (TF32).
"""

from __future__ import annotations

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


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CPUs with AMX/AVX-512 bf16, fp16 on MPS, else fp32 (on CUDA too: our small
    convolutional nets ran faster in fp32, which uses TF32 tensor cores, than under bf16 autocast on an H100)."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.float32
        if device.type == "cpu":
            return torch.bfloat16 if cpu_supports_bf16() else torch.float32
        return torch.float16 if device.type == "mps" else torch.float32
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype not in table:
        raise ValueError(f"dtype must be auto, fp32, bf16 or fp16; got {dtype!r}")
    if dtype == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is not supported on the CPU; use bf16 or fp32")
    return table[dtype]
