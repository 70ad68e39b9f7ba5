"""Backbones by name: a dict filled by ``@register`` in modules that ``nets/__init__`` imports."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def deco(factory: Callable[..., nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def create(name: str, *, scale: int, prompt_dim: int = 0) -> nn.Module:
    """Build the backbone ``name`` for an upscaling factor ``scale``: ``f(x_t, t, cond) -> v``.

    ``prompt_dim > 0`` asks for a backbone that also takes visual prompt tokens, ``f(x_t, t, cond, prompt)``.
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](scale=scale, prompt_dim=prompt_dim)


def names() -> list[str]:
    return sorted(_REGISTRY)
