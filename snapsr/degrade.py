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

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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


# ---------------------------------------------------------------------------
# random draws


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def _choice(g: torch.Generator, n: int, probs=None) -> int:
    p = torch.ones(n) if probs is None else torch.tensor(probs, dtype=torch.float64)
    return int(torch.multinomial(p, 1, generator=g).item())


def _odd_size(g: torch.Generator, lo: int, hi: int) -> int:
    return 2 * int(torch.randint(lo // 2, hi // 2 + 1, (), generator=g).item()) + 1


# ---------------------------------------------------------------------------
# kernels (all returned normalised, centred in a ``size x size`` grid)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(size, dtype=torch.float64) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return xx, yy


def _quad_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """``x^T Sigma^-1 x`` over the grid, Sigma the rotated covariance."""
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float = 1.0) -> torch.Tensor:
    """(Generalized) Gaussian: ``exp(-0.5 * q^beta)``; beta = 1 is the ordinary Gaussian."""
    k = torch.exp(-0.5 * _quad_form(size, sigma_x, sigma_y, theta) ** beta)
    return (k / k.sum()).float()


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> torch.Tensor:
    k = 1.0 / (1.0 + _quad_form(size, sigma_x, sigma_y, theta) ** beta)
    return (k / k.sum()).float()


def sinc_kernel(size: int, omega_c: float) -> torch.Tensor:
    """Circular low-pass (2-D sinc) with cutoff ``omega_c``: ringing and overshoot artefacts."""
    xx, yy = _grid(size)
    r = torch.sqrt(xx**2 + yy**2)
    safe = torch.where(r == 0, torch.ones_like(r), r)
    k = omega_c * torch.special.bessel_j1(omega_c * safe) / (2 * math.pi * safe)
    k = torch.where(r == 0, torch.full_like(r, omega_c**2 / (4 * math.pi)), k)
    return (k / k.sum()).float()


def _pad_kernel(k: torch.Tensor, size: int) -> torch.Tensor:
    p = (size - k.shape[-1]) // 2
    return F.pad(k, (p, p, p, p))


def random_kernel(g: torch.Generator, cfg: DegradeConfig, second: bool) -> torch.Tensor:
    """One blur kernel of the first or second degradation, padded to the largest size."""
    lo, hi = cfg.kernel_size_range
    size = _odd_size(g, lo, hi)
    sinc_p = cfg.sinc_prob2 if second else cfg.sinc_prob
    if _u(g, 0, 1) < sinc_p:
        omega = _u(g, math.pi / 3, math.pi) if size < 13 else _u(g, math.pi / 5, math.pi)
        return _pad_kernel(sinc_kernel(size, omega), hi)
    probs = cfg.kernel_prob2 if second else cfg.kernel_prob
    sigma = cfg.blur_sigma2 if second else cfg.blur_sigma
    betag = cfg.betag_range2 if second else cfg.betag_range
    betap = cfg.betap_range2 if second else cfg.betap_range
    kind = KERNEL_TYPES[_choice(g, len(KERNEL_TYPES), probs)]
    sx = _u(g, *sigma)
    if kind.endswith("aniso"):
        sy, theta = _u(g, *sigma), _u(g, -math.pi, math.pi)
    else:
        sy, theta = sx, 0.0
    if kind.startswith("generalized"):
        beta = _u(g, betag[0], 1) if _u(g, 0, 1) < 0.5 else _u(g, 1, betag[1])
        k = gaussian_kernel(size, sx, sy, theta, beta)
    elif kind.startswith("plateau"):
        beta = _u(g, betap[0], 1) if _u(g, 0, 1) < 0.5 else _u(g, 1, betap[1])
        k = plateau_kernel(size, sx, sy, theta, beta)
    else:
        k = gaussian_kernel(size, sx, sy, theta)
    return _pad_kernel(k, hi)


def filter2d(img: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image of ``img (B,C,H,W)`` with its own kernel from ``kernels (B,k,k)``."""
    B, C, H, W = img.shape
    k = kernels.shape[-1]
    x = F.pad(img, (k // 2,) * 4, mode="reflect" if min(H, W) > k // 2 else "replicate")
    w = kernels.to(img).repeat_interleave(C, dim=0).unsqueeze(1)
    out = F.conv2d(x.reshape(1, B * C, *x.shape[-2:]), w, groups=B * C)
    return out.reshape(B, C, H, W)


# ---------------------------------------------------------------------------
# noise


def _gray(img: torch.Tensor) -> torch.Tensor:
    return (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]) if img.shape[1] == 3 else img


def add_gaussian_noise(img, g, sigma_range, gray_prob) -> torch.Tensor:
    B = img.shape[0]
    sigma = (torch.rand(B, generator=g) * (sigma_range[1] - sigma_range[0]) + sigma_range[0]) / 255.0
    gray = (torch.rand(B, generator=g) < gray_prob).float()
    color_n = torch.randn(img.shape, generator=g)
    gray_n = torch.randn((B, 1, *img.shape[-2:]), generator=g).expand_as(color_n)
    m = gray.view(B, 1, 1, 1)
    noise = (m * gray_n + (1 - m) * color_n) * sigma.view(B, 1, 1, 1)
    return (img + noise.to(img)).clamp(0, 1)


def add_poisson_noise(img, g, scale_range, gray_prob) -> torch.Tensor:
    B = img.shape[0]
    scale = torch.rand(B, generator=g) * (scale_range[1] - scale_range[0]) + scale_range[0]
    gray = torch.rand(B, generator=g) < gray_prob

    def shot(x: torch.Tensor) -> torch.Tensor:
        # 8-bit photon counts; torch.poisson takes the generator only on the CPU
        lam = (x.clamp(0, 1) * 255).round().cpu().float()
        return (torch.poisson(lam, generator=g) - lam).to(x) / 255

    # each image draws only the variant it uses (grey noise is one plane shared by R, G, B)
    noise = torch.zeros_like(img)
    if (~gray).any():
        noise[~gray] = shot(img[~gray])
    if gray.any():
        noise[gray] = shot(_gray(img[gray])).expand(-1, img.shape[1], -1, -1)
    return (img + noise * scale.view(B, 1, 1, 1).to(img)).clamp(0, 1)


# ---------------------------------------------------------------------------
# JPEG (baseline, 4:2:0), on tensors: our own implementation of the codec's lossy part

_Q_LUMA = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float32,
)
_Q_CHROMA = torch.full((8, 8), 99.0)
_Q_CHROMA[:4, :4] = torch.tensor(
    [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], dtype=torch.float32
)


def _dct_matrix() -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.float()


_DCT = _dct_matrix()


def _quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's quality scaling of the standard tables, per image: ``(B,8,8)`` each."""
    q = quality.clamp(1, 100)
    s = torch.where(q < 50, 5000 / q, 200 - 2 * q).view(-1, 1, 1)
    luma = ((_Q_LUMA * s + 50) / 100).floor().clamp(1, 255)
    chroma = ((_Q_CHROMA * s + 50) / 100).floor().clamp(1, 255)
    return luma, chroma


def _code_plane(p: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """DCT -> quantise -> dequantise -> IDCT of one plane ``(B,H,W)``, H, W multiples of 8."""
    B, H, W = p.shape
    blocks = p.reshape(B, H // 8, 8, W // 8, 8).permute(0, 1, 3, 2, 4)
    d = _DCT.to(p)
    coef = d @ blocks @ d.T
    t = table.to(p).view(B, 1, 1, 8, 8)
    coef = torch.round(coef / t) * t
    blocks = d.T @ coef @ d
    return blocks.permute(0, 1, 3, 2, 4).reshape(B, H, W)


def jpeg(img: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Compress and decompress ``img (B,3,H,W)`` in [0, 1] at per-image ``quality (B,)``."""
    B, C, H, W = img.shape
    x = F.pad(img.float(), (0, (-W) % 16, 0, (-H) % 16), mode="replicate") * 255
    r, g_, b = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g_ + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g_ + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g_ - 0.081312 * b + 128
    luma_t, chroma_t = _quant_tables(quality.float().cpu())
    y = _code_plane(y - 128, luma_t) + 128
    sub = lambda c: F.avg_pool2d(c.unsqueeze(1), 2).squeeze(1)  # noqa: E731
    up = lambda c: F.interpolate(c.unsqueeze(1), scale_factor=2, mode="bilinear", align_corners=False).squeeze(1)  # noqa: E731
    cb = up(_code_plane(sub(cb) - 128, chroma_t) + 128) - 128
    cr = up(_code_plane(sub(cr) - 128, chroma_t) + 128) - 128
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    out = (out / 255).clamp(0, 1)[..., :H, :W]
    return out.to(img.dtype)


# ---------------------------------------------------------------------------
# the pipeline


def _random_resize(img, g, probs, rng, size=None) -> torch.Tensor:
    kind = _choice(g, 3, probs)
    f = _u(g, 1, rng[1]) if kind == 0 else _u(g, rng[0], 1) if kind == 1 else 1.0
    mode = RESIZE_MODES[_choice(g, 3)]
    h, w = size if size is not None else img.shape[-2:]
    new = (max(1, int(h * f)), max(1, int(w * f)))
    return F.interpolate(img, size=new, mode=mode, **({} if mode == "area" else {"align_corners": False}))


def _noise(img, g, cfg: DegradeConfig, second: bool) -> torch.Tensor:
    gp = cfg.gaussian_noise_prob2 if second else cfg.gaussian_noise_prob
    gray = cfg.gray_noise_prob2 if second else cfg.gray_noise_prob
    if _u(g, 0, 1) < gp:
        return add_gaussian_noise(img, g, cfg.noise_range2 if second else cfg.noise_range, gray)
    return add_poisson_noise(img, g, cfg.poisson_scale_range2 if second else cfg.poisson_scale_range, gray)


def _jpeg(img, g, rng) -> torch.Tensor:
    q = torch.rand(img.shape[0], generator=g) * (rng[1] - rng[0]) + rng[0]
    return jpeg(img.clamp(0, 1), q)


def _quantize(img: torch.Tensor) -> torch.Tensor:
    return ((img.clamp(0, 1) * 255).round() / 255).clamp(0, 1)


def bicubic_down(hr: torch.Tensor, scale: int) -> torch.Tensor:
    h, w = hr.shape[-2:]
    lr = F.interpolate(hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return _quantize(lr)


def mixture_sizes(batch: int, cfg: DegradeConfig) -> tuple[int, int, int]:
    """How many images of a batch are ``(clean, light, full)``: the shares, rounded."""
    clean = round(batch * cfg.clean_share)
    light = min(round(batch * cfg.light_share), batch - clean)
    return clean, light, batch - clean - light


def degrade(hr: torch.Tensor, scale: int, cfg: DegradeConfig, generator: torch.Generator) -> torch.Tensor:
    """HR batch ``(B,3,H,W)`` in [0, 1] (H, W multiples of ``scale``) -> LR batch ``(B,3,H/s,W/s)``.

    With ``clean_share``/``light_share``, the first images of the batch are clean, the next
    lightly degraded and the rest fully (crops are drawn at random, so the order means nothing).
    """
    if hr.ndim != 4 or hr.shape[1] != 3:
        raise ValueError(f"degrade expects (B,3,H,W), got {tuple(hr.shape)}")
    if cfg.mode == "bicubic":
        return bicubic_down(hr, scale)
    if cfg.mode != "realesrgan":
        raise ValueError(f"unknown degradation mode {cfg.mode!r}")
    clean, light, full = mixture_sizes(hr.shape[0], cfg)
    if clean or light:
        parts = [bicubic_down(hr[:clean], scale)] if clean else []
        if light:
            parts.append(_second_order(hr[clean : clean + light], scale, cfg.light(), generator))
        if full:
            parts.append(_second_order(hr[clean + light :], scale, cfg, generator))
        return torch.cat(parts).to(hr.dtype)
    return _second_order(hr, scale, cfg, generator)


def _second_order(hr: torch.Tensor, scale: int, cfg: DegradeConfig, generator: torch.Generator) -> torch.Tensor:
    """Real-ESRGAN's pipeline (``cfg.second_order = False``: its first round and final resize only)."""
    g = generator
    B = hr.shape[0]
    H, W = hr.shape[-2:]
    out = hr.float()
    # -- first degradation
    if cfg.blur:
        out = filter2d(out, torch.stack([random_kernel(g, cfg, second=False) for _ in range(B)]))
    if cfg.resize:
        out = _random_resize(out, g, cfg.resize_prob, cfg.resize_range)
    if cfg.noise:
        out = _noise(out, g, cfg, second=False)
    if cfg.jpeg:
        out = _jpeg(out, g, cfg.jpeg_range)
    # -- second degradation
    if cfg.second_order:
        if cfg.blur and _u(g, 0, 1) < cfg.second_blur_prob:
            out = filter2d(out, torch.stack([random_kernel(g, cfg, second=True) for _ in range(B)]))
        if cfg.resize:
            out = _random_resize(out, g, cfg.resize_prob2, cfg.resize_range2, size=(H // scale, W // scale))
        if cfg.noise:
            out = _noise(out, g, cfg, second=True)
    # -- final: [resize back + sinc] and JPEG, in random order
    lo, hi = cfg.kernel_size_range
    if cfg.final_sinc and _u(g, 0, 1) < cfg.final_sinc_prob:
        size = _odd_size(g, lo, hi)
        sinc = _pad_kernel(sinc_kernel(size, _u(g, math.pi / 3, math.pi)), hi)
    else:
        sinc = None
    mode = RESIZE_MODES[_choice(g, 3)]
    jpeg_first = _u(g, 0, 1) < 0.5

    def resize_back(x):
        kw = {} if mode == "area" else {"align_corners": False}
        x = F.interpolate(x, size=(H // scale, W // scale), mode=mode, **kw)
        return filter2d(x, sinc.expand(B, -1, -1)) if sinc is not None else x

    if cfg.jpeg and cfg.second_order and jpeg_first:
        out = resize_back(_jpeg(out, g, cfg.jpeg_range2))
    elif cfg.jpeg and cfg.second_order:
        out = _jpeg(resize_back(out), g, cfg.jpeg_range2)
    else:
        out = resize_back(out)
    return _quantize(out).to(hr.dtype)
