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


def create(name: str, *, scale: int) -> nn.Module:
    """Build the backbone ``name`` for an upscaling factor ``scale``: ``f(x_t, t, cond) -> v``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](scale=scale)


def names() -> list[str]:
    return sorted(_REGISTRY)
