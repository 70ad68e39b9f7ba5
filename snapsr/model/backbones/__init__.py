from snapsr.model.backbones import latent, lrnet  # noqa: F401  (each registers its backbones)
from snapsr.model.backbones.registry import create, names, register

__all__ = ["create", "names", "register"]
