"""Real-ESRGAN's second-order degradation model on batched tensors, and plain bicubic.

Follows Wang et al., "Real-ESRGAN" (2021), sec. 3 and its released training
options: blur (isotropic / anisotropic Gaussian, generalized Gaussian, plateau,
2-D sinc) -> random resize -> Gaussian or Poisson noise -> JPEG, twice, then the
final sinc filter + resize to 1/scale and JPEG in random order. Every random draw
comes from one ``torch.Generator`` on the CPU, so a seed fixes the output on any
device; the image work itself runs on the input's device (a GPU when there is one).
Kernels and noise levels are drawn per image, resize factors per batch (the
images of a batch must keep one shape).
"""

from __future__ import annotations

from snapsr.degrade.config import KERNEL_TYPES, RESIZE_MODES, DegradeConfig
from snapsr.degrade.jpeg import jpeg
from snapsr.degrade.kernels import filter2d, gaussian_kernel, plateau_kernel, random_kernel, sinc_kernel
from snapsr.degrade.noise import add_gaussian_noise, add_poisson_noise
from snapsr.degrade.pipeline import bicubic_down, degrade, mixture_sizes

__all__ = [
    "KERNEL_TYPES",
    "RESIZE_MODES",
    "DegradeConfig",
    "add_gaussian_noise",
    "add_poisson_noise",
    "bicubic_down",
    "degrade",
    "filter2d",
    "gaussian_kernel",
    "jpeg",
    "mixture_sizes",
    "plateau_kernel",
    "random_kernel",
    "sinc_kernel",
]
