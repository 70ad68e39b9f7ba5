"""Backbones by name: a dict filled by ``@register`` in modules that ``backbones/__init__`` imports.

The contract every backbone keeps (the flow wrapper, ``FlowSR``, relies on nothing else):

* ``forward(x_t, t, cond, **extra) -> v``: ``x_t`` and ``cond = up(LR)`` are ``(B, C, H, W)`` with
  H and W multiples of ``size_multiple``; ``t`` is already ``(B, 1, 1, 1)`` or a per-pixel map
  ``(B, 1, H, W)`` (the wrapper normalises and pads once). ``extra`` holds what the wrapper's
  conditioners made: ``prompt`` (RCOD's visual tokens ``(B, K, D)``) when the backbone was built
  with ``prompt_dim``.
* ``size_multiple``: the side multiple it needs; ``memory_per_lr_pixel(element_bytes)``: working
  bytes of its activations per LR pixel, for the inference contract's tile size.
"""

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


def create(name: str, *, scale: int, **hparams) -> nn.Module:
    """Build the backbone ``name`` for an upscaling factor ``scale``; ``hparams`` go to its factory
    (``prompt_dim=D``: also take RCOD's visual prompt tokens of width D)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](scale=scale, **hparams)


def names() -> list[str]:
    return sorted(_REGISTRY)
