"""snapsr: one-step real-world image super-resolution with a fidelity-realism dial.

``from snapsr import Upscaler`` imports lazily: importing snapsr touches neither
CUDA nor the network, and the CLI starts without loading the model code.
"""

__version__ = "0.1.0"
__all__ = ["Upscaler", "UpscaleOptions", "__version__"]


def __getattr__(name):
    if name in ("Upscaler", "UpscaleOptions"):
        from snapsr.infer import upscaler

        return getattr(upscaler, name)
    raise AttributeError(f"module 'snapsr' has no attribute {name!r}")
