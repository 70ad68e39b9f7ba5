from snapsr.model.backbones import lrnet  # noqa: F401  (registers its backbones)
from snapsr.model.backbones.registry import create, names, register

__all__ = ["create", "names", "register"]
