"""The pieces every training recipe shares: devices and DDP, precision, EMA,
learning-rate schedule, stop signals. Plain functions and small classes; the
recipe's own file keeps the loop readable top to bottom.

Distributed training uses torch's own DDP under ``torchrun`` (no extra
dependency): ``torchrun --nproc_per_node N -m snapsr train teacher ...`` runs
the same command on N processes; without torchrun it is one process.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist

from snapsr.runtime import cpu_supports_bf16  # noqa: F401 - also this module's, for callers


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(f"cuda:{local}" if device == "cuda" else device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


def shutdown_distributed() -> None:
    """Wait for every rank (rank 0 may still be writing its checkpoint), then close the group:
    a process that exits with gloo's threads alive can abort ("terminate called...")."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 where the hardware does it fast (AMX/AVX-512 CPUs, Ampere+ GPUs), else fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else torch.float32
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in table:
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16; got {precision!r}")
    return table[precision]


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class EMA:
    """Exponential moving average of a model's parameters and buffers."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # Warm-up (as in timm's ModelEmaV3): early averages do not drag the random init along.
        d = min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


def warmup_cosine(step: int, *, warmup: int, total: int, base: float, floor: float) -> float:
    """Multiplier of the base learning rate: linear warm-up, then cosine down to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return (floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * p))) / base


class StopFlag:
    """SIGINT/SIGTERM set a flag that the loop checks after each step, so it can checkpoint and exit."""

    def __init__(self):
        self.signal: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers, nothing to restore
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def __bool__(self) -> bool:
        return self.signal is not None


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
