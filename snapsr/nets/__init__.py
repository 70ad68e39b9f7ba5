from snapsr.nets import lrnet  # noqa: F401  (registers its backbones)
from snapsr.nets.registry import create, names, register

__all__ = ["create", "names", "register"]
