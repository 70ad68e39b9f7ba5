"""The training recipes by name: a small explicit registry filled by ``@recipe`` (timm's ``@register_model``).

Each recipe module registers its builder with its frozen run config; ``snapsr/train/__init__.py``
imports those modules by name, so the registry is complete whenever ``snapsr.train`` is imported.
The CLI looks a recipe up here (``snapsr train NAME``): a new recipe is one file and one import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from snapsr.train.loop import Recipe, RunResult, run


@dataclass(frozen=True)
class RecipeSpec:
    name: str
    config: type  # its frozen run config: defaults, then a TOML file, then key=value overrides
    build: Callable[[Any, torch.device], Recipe]
    summary: str  # one line for ``snapsr train --help``

    def train(self, cfg, **kw) -> RunResult:
        """Train (or with ``resume=True`` continue) a run of this recipe; see ``loop.run`` for the options."""
        if not isinstance(cfg, self.config):
            raise TypeError(f"recipe {self.name!r} runs a {self.config.__name__}, not a {type(cfg).__name__}")
        return run(cfg, self.build, **kw)


_RECIPES: dict[str, RecipeSpec] = {}


def recipe(name: str, *, config: type, summary: str):
    """Register the decorated ``build(cfg, device) -> Recipe`` as the recipe ``name``."""

    def register(build):
        if name in _RECIPES:
            raise ValueError(f"training recipe {name!r} registered twice")
        _RECIPES[name] = RecipeSpec(name, config, build, summary)
        return build

    return register


def get(name: str) -> RecipeSpec:
    if name not in _RECIPES:
        raise ValueError(f"unknown training recipe {name!r}; known: {', '.join(names())}")
    return _RECIPES[name]


def names() -> list[str]:
    return sorted(_RECIPES)
