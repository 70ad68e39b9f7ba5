"""Random draws from one CPU ``torch.Generator``: a seed fixes every degradation on any device."""

from __future__ import annotations

import torch


def uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def choice(g: torch.Generator, n: int, probs=None) -> int:
    p = torch.ones(n) if probs is None else torch.tensor(probs, dtype=torch.float64)
    return int(torch.multinomial(p, 1, generator=g).item())


def odd_size(g: torch.Generator, lo: int, hi: int) -> int:
    return 2 * int(torch.randint(lo // 2, hi // 2 + 1, (), generator=g).item()) + 1
