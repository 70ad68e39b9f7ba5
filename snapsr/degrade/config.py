"""The degradation model's options: Real-ESRGAN's defaults and the clean/light/full mixture."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")


@dataclass(frozen=True)
class DegradeConfig:
    """Defaults are Real-ESRGAN's ``train_realesrnet_x4plus.yml``."""

    mode: str = "realesrgan"  # realesrgan | bicubic
    # switches, for ablations and tests
    blur: bool = True
    resize: bool = True
    noise: bool = True
    jpeg: bool = True
    second_order: bool = True
    final_sinc: bool = True
    # first degradation
    kernel_size_range: tuple[int, int] = (7, 21)  # odd sizes in this range, padded to the max
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # in KERNEL_TYPES order
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)  # sigma, in 8-bit levels
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # second degradation
    second_blur_prob: float = 0.8
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    # final stage
    final_sinc_prob: float = 0.8
    # The mixture a batch is drawn from (``mode = "realesrgan"``): these shares of each batch are
    # clean (bicubic only) and lightly degraded (one blur/resize/noise/JPEG round with the milder
    # ranges below), the rest gets the full second-order model. Users feed clean photos too: a
    # model that only ever saw heavy degradations smears their detail as if it were noise.
    clean_share: float = 0.0
    light_share: float = 0.0
    light_blur_sigma: tuple[float, float] = (0.2, 1.5)
    light_noise_range: tuple[float, float] = (1.0, 10.0)
    light_poisson_scale_range: tuple[float, float] = (0.05, 1.0)
    light_jpeg_range: tuple[float, float] = (60.0, 95.0)

    def __post_init__(self):
        if min(self.clean_share, self.light_share) < 0 or self.clean_share + self.light_share > 1:
            raise ValueError(
                f"degrade.clean_share ({self.clean_share}) and light_share ({self.light_share}) must be "
                "non-negative and sum to at most 1"
            )

    def without_noise(self) -> DegradeConfig:
        """The same model with every noise amplitude at 0: it draws the same random numbers in the same
        order, so from the same generator state it makes a pair's noise-free twin (same blur, resizes
        and JPEG qualities)."""
        zero = (0.0, 0.0)
        return dataclasses.replace(
            self,
            noise_range=zero,
            noise_range2=zero,
            poisson_scale_range=zero,
            poisson_scale_range2=zero,
            light_noise_range=zero,
            light_poisson_scale_range=zero,
        )

    def light(self) -> DegradeConfig:
        """The single-round, milder model of the mixture's light share."""
        return dataclasses.replace(
            self,
            second_order=False,
            blur_sigma=self.light_blur_sigma,
            noise_range=self.light_noise_range,
            poisson_scale_range=self.light_poisson_scale_range,
            jpeg_range=self.light_jpeg_range,
            clean_share=0.0,
            light_share=0.0,
        )
