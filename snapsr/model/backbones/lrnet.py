"""LRNet: a time-conditioned residual conv trunk that works at LR resolution.

The HR-size state ``x_t`` and condition ``up(LR)`` are pixel-unshuffled by the
scale factor, so every convolution runs on ``scale**2`` times fewer pixels, and
the output is pixel-shuffled back to an HR-size velocity. ``t`` is a scalar per
image or a per-pixel map; it enters every block through FiLM, computed per LR
pixel when ``t`` is a map, so the realism dial can vary across the image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from snapsr.model.backbones.prompt import PromptFiLM, local_energy
from snapsr.model.backbones.registry import register


@dataclass(frozen=True)
class LRNetConfig:
    scale: int = 4
    channels: int = 64
    blocks: int = 12
    t_features: int = 16  # Fourier features of t
    image_channels: int = 3
    prompt_dim: int = 0  # > 0: accept visual prompt tokens of this width (RCOD's injection)
    # A context branch at 1/context_factor of LR resolution after the middle block (``Context``);
    # context = its number of convolutions, 0 for none.
    context: int = 0
    context_factor: int = 4
    # Per-region degradation cues into the trunk: ``local_energy`` of the LR (each channel's finest
    # band and its ratio to the next, the estimator's own input) added after the head through a
    # zero-initialised convolution, so that a block can tell blotchy noise from fine texture beside it.
    energy: bool = False


class FourierTime(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        # Fixed log-spaced frequencies: t in [0, 1] needs only a handful.
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(64.0), features // 2)) * math.pi)

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,1,h,w) -> (B,F,h,w)
        arg = t * self.freqs.view(1, -1, 1, 1).to(t.dtype)
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class FiLMBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Conv2d(channels, 2 * channels, 1)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        with torch.no_grad():  # blocks start close to the identity
            self.conv2.weight.mul_(0.1)

    def forward(self, z: torch.Tensor, emb: torch.Tensor | DialTable) -> torch.Tensor:
        if isinstance(emb, DialTable):
            return self._per_pixel_inference(z, emb)
        scale, shift = self.film(emb).chunk(2, dim=1)
        if not torch.is_grad_enabled() and z.shape[0] == 1 and emb.shape[-2:] == (1, 1):
            # Inference with one t per image: fold FiLM into conv1's weights and bias, so
            # the activations are read once instead of three times (conv, scale, shift).
            g = (1 + scale).reshape(-1)
            w = self.conv1.weight * g.view(-1, 1, 1, 1).to(self.conv1.weight.dtype)
            b = self.conv1.bias * g + shift.reshape(-1)
            if _fusable(z):
                return _fused_block(z, w, b, self.conv2.weight, self.conv2.bias)
            h = F.conv2d(z, w, b, padding=1)
        else:
            h = self.conv1(z) * (1 + scale) + shift
        return z + self.conv2(F.silu(h))

    def _per_pixel_inference(self, z: torch.Tensor, table: DialTable) -> torch.Tensor:
        """The block with a dial value per pixel (a realism map, ``auto``), in four passes instead of
        seven: FiLM's gain and shift looked up per pixel in tables over the dial's grid (``DialTable``)
        instead of two 1x1 convolutions of the embedding per pixel (one 512x384 upscale at auto,
        in-process, 2-core AMD EPYC: 1.28-1.31 -> 1.20-1.24 s), the modulation one ``addcmul`` and the
        SiLU in conv1's output, and conv2 with the residual sum fused. Gain and shift are separate
        tensors, not one of twice the width: for a 512x384 tile in bf16 one of 128 channels is 50 MB,
        over glibc's largest mmap threshold (32 MiB), so each block would fault it in afresh; two of
        25 MB reuse the heap."""
        d, C = z.dtype, z.shape[1]
        w, b = self.film.weight.float().view(2 * C, C), self.film.bias.float()
        gain, shift = (
            table.lookup(F.linear(table.values, w[:C], b[:C] + 1), d),
            table.lookup(F.linear(table.values, w[C:], b[C:]), d),
        )
        h = F.conv2d(z, self.conv1.weight.to(d), self.conv1.bias.to(d), padding=1)
        F.silu(torch.addcmul(shift, h, gain, out=h), inplace=True)
        one, w2, b2 = [1, 1], self.conv2.weight.to(d), self.conv2.bias.to(d)
        return _FUSED[1](h, z, w2, b2, one, one, one, 1, "add", None, None, [], None)


class DialTable:
    """A per-pixel time embedding as a table: the embedding at ``steps`` dial values evenly spaced
    over the map's range, and each LR pixel's nearest row (eager CPU inference only). The embedding
    is a function of ``t`` alone (plus one prompt vector per image), so each block's FiLM needs
    ``steps`` rows of a 1x1 convolution, not one per pixel. The map's values move by at most half a
    step (1/8190 of its range): dial-s10's fp32 output at ``auto`` moved by 0.03 of a level in 255 at
    most on two degraded crops, a hundredth of what bf16's rounding moves it (1.8 levels)."""

    steps = 4096

    def __init__(self, time: nn.Module, t: torch.Tensor, prompt: torch.Tensor | None):
        B, _, h, w = t.shape
        t = t.float()
        lo, hi = t.amin(), t.amax()
        n = self.steps if hi > lo else 1
        grid = torch.linspace(float(lo), float(hi), n, device=t.device)
        with torch.autocast(t.device.type, enabled=False):
            emb = time(grid.view(1, 1, n, 1)).view(1, -1, n).transpose(1, 2)  # (1, n, C) in float32
        if prompt is not None:
            emb = emb + prompt.float().view(B, 1, -1)
        self.values = emb.expand(B, n, emb.shape[-1]).reshape(B * n, -1)  # (B*n, C)
        row = ((t - lo) * ((n - 1) / (hi - lo)) if n > 1 else torch.zeros_like(t)).round_().long()
        self.index = (row.view(B, h * w) + torch.arange(B, device=t.device).view(B, 1) * n).view(-1)
        self.shape = (B, h, w)

    def lookup(self, rows: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Rows ``(B*n, C)`` -> one per pixel, ``(B, C, h, w)`` in channels_last."""
        B, h, w = self.shape
        return F.embedding(self.index, rows.to(dtype)).view(B, h, w, -1).permute(0, 3, 1, 2)


def _fusable(z: torch.Tensor) -> bool:
    """Whether oneDNN's fused convolutions can run this block: a CPU tensor in channels_last, eagerly
    (an ONNX or TorchScript trace and torch.compile get the plain ops, which they fuse their own way)."""
    return (
        z.device.type == "cpu"
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and z.dtype in (torch.float32, torch.bfloat16)
        and z.is_contiguous(memory_format=torch.channels_last)
        and _FUSED is not None
    )


def _fused_block(z: torch.Tensor, w1, b1, w2, b2) -> torch.Tensor:
    """``z + conv2(silu(conv1(z)))`` in two oneDNN calls, the SiLU and the residual sum done in each
    convolution's output pass instead of two more passes over the activations (11% of an upscale on
    a 2-core CPU). Autocast does not reach these ops: weights take the activations' dtype here."""
    conv, conv_add = _FUSED
    d = z.dtype
    one = [1, 1]
    h = conv(z, w1.to(d), b1.to(d), one, one, one, 1, "swish", [], "")
    return conv_add(h, z, w2.to(d), b2.to(d), one, one, one, 1, "add", None, None, [], None)


def _eager() -> bool:
    return not torch.jit.is_tracing() and not torch.compiler.is_compiling() and not torch.onnx.is_in_onnx_export()


def unshuffle_pair(x: torch.Tensor, cond: torch.Tensor, s: int) -> torch.Tensor:
    """``pixel_unshuffle(cat([x, cond]), s)`` in channels_last, by two strided copies straight into
    the result (the cat, the unshuffle and the change of layout were three passes over both HR
    tensors: 0.13 s of a 512x384 upscale on 2 cores). The same values, bit for bit."""
    B, C, H, W = x.shape
    h, w = H // s, W // s
    out = torch.empty(B, h, w, 2, C, s, s, dtype=x.dtype, device=x.device)
    for k, src in enumerate((x, cond)):
        out[:, :, :, k].copy_(src.reshape(B, C, h, s, w, s).permute(0, 2, 4, 1, 3, 5))
    return out.view(B, h, w, 2 * C * s * s).permute(0, 3, 1, 2)  # NCHW sizes, channels_last strides


def shuffle(y: torch.Tensor, s: int) -> torch.Tensor:
    """``pixel_shuffle(y, s)`` of a channels_last ``y`` into a contiguous NCHW image in one pass."""
    B, Cs, h, w = y.shape
    C = Cs // (s * s)
    out = torch.empty(B, C, h, s, w, s, dtype=y.dtype, device=y.device)
    out.copy_(y.permute(0, 2, 3, 1).reshape(B, h, w, C, s, s).permute(0, 3, 1, 4, 2, 5))
    return out.view(B, C, h * s, w * s)


def _fused_ops():
    try:
        ops = torch.ops.mkldnn
        if not torch.backends.mkldnn.is_available():
            return None
        return ops._convolution_pointwise.default, ops._convolution_pointwise.binary
    except (AttributeError, RuntimeError):
        return None


_FUSED = _fused_ops()


class Context(nn.Module):
    """A low-resolution branch that widens what each LR pixel sees, for about 1% of the trunk's work.

    The trunk's 3x3 convolutions see some 50 LR pixels, and far less in effect: colour noise in
    blotches a few LR pixels wide and JPEG blocks look like texture at that range. The branch
    average-pools the features by ``factor``, runs residual convolutions there (each one widens
    the view by ``2 * factor`` LR pixels) and adds them back, bilinearly upsampled, through a
    zero-initialised 1x1 convolution, so adding it to a trained network starts as the identity.
    """

    def __init__(self, channels: int, convs: int, factor: int):
        super().__init__()
        self.factor = factor
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(convs))
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(z, self.factor)
        for conv in self.convs:
            y = y + conv(F.silu(y))
        y = F.interpolate(y, size=z.shape[-2:], mode="bilinear", align_corners=False)
        return z + self.out(y)


class LRNet(nn.Module):
    def __init__(self, cfg: LRNetConfig):
        super().__init__()
        self.cfg = cfg
        s, c, C = cfg.scale, cfg.image_channels, cfg.channels
        self.head = nn.Conv2d(2 * c * s * s, C, 3, padding=1)
        self.energy = nn.Conv2d(2 * c, C, 3, padding=1) if cfg.energy else None
        if self.energy is not None:
            nn.init.zeros_(self.energy.weight)
            nn.init.zeros_(self.energy.bias)
        self.time = nn.Sequential(
            FourierTime(cfg.t_features), nn.Conv2d(cfg.t_features, C, 1), nn.SiLU(), nn.Conv2d(C, C, 1), nn.SiLU()
        )
        self.blocks = nn.ModuleList(FiLMBlock(C) for _ in range(cfg.blocks))
        self.context = Context(C, cfg.context, cfg.context_factor) if cfg.context > 0 else None
        self.prompt = PromptFiLM(cfg.prompt_dim, C) if cfg.prompt_dim > 0 else None
        self.tail = nn.Conv2d(C, c * s * s, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def hparams(self) -> dict:
        return asdict(self.cfg)

    @property
    def size_multiple(self) -> int:
        # the pixel unshuffle, and the context branch's pooling at LR resolution
        return self.cfg.scale * (self.cfg.context_factor if self.context is not None else 1)

    def memory_per_lr_pixel(self, element_bytes: int) -> int:
        """About 8 live trunk activations of ``channels`` per LR pixel."""
        return self.cfg.channels * element_bytes * 8

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, prompt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The registry's contract: sizes multiples of ``scale``, ``t`` as ``(B,1,1,1)`` or ``(B,1,H,W)``;
        ``prompt``: visual tokens ``(B, K, D)``, required when built with ``prompt_dim > 0``."""
        if (prompt is None) != (self.prompt is None):
            raise ValueError("this backbone " + ("needs" if self.prompt is not None else "takes no") + " prompt tokens")
        s = self.cfg.scale
        if t.shape[-1] > 1:
            t = F.avg_pool2d(t, s)
        # HR-size tensors with 3 channels are fastest in plain NCHW; the trunk runs channels_last
        # (oneDNN's fast layout on CPUs, tensor cores on GPUs).
        if _eager():
            u = unshuffle_pair(x_t, cond, s)
        else:  # traces and exports get the plain ops
            u = F.pixel_unshuffle(torch.cat([x_t, cond], dim=1), s).contiguous(memory_format=torch.channels_last)
        z = self.head(u)
        if self.energy is not None:  # cues read from the LR (up(LR) pooled back), in float32 for the log
            cues = self.energy(local_energy(F.avg_pool2d(cond.float(), s)).to(z.dtype))
            z = (z + cues).contiguous(memory_format=torch.channels_last)
        p = self.prompt(prompt) if prompt is not None else None
        if t.shape[-1] > 1 and not torch.is_grad_enabled() and _fusable(z):
            emb = DialTable(self.time, t, p)
        else:
            emb = self.time(t)
            if p is not None:
                emb = emb + p.to(emb.dtype)
        middle = len(self.blocks) // 2
        for i, block in enumerate(self.blocks):
            if i == middle and self.context is not None:
                z = self.context(z)
            z = block(z, emb)
        y = self.tail(z)
        if _eager() and y.is_contiguous(memory_format=torch.channels_last):
            return shuffle(y, s)
        return F.pixel_shuffle(y.contiguous(), s)


@register("lrnet_s")
def lrnet_s(*, scale: int, prompt_dim: int = 0, context: int = 0, energy: bool = False, blocks: int = 12) -> LRNet:
    """About 0.9M parameters: the CPU-fast size (``context``: convolutions of the low-resolution
    context branch, 0 for none; 4 add 0.15M parameters and about 1% of the work; ``energy``: the
    per-region degradation cues, 3.5k parameters; ``blocks``: the trunk's depth, its work in
    proportion: 8 is the default (dial-s11), 6 the fast tier, made from a 12-block student by gtasr's
    ``keep_blocks``)."""
    if not 1 <= blocks <= 64:
        raise ValueError(f"lrnet_s blocks must be in [1, 64], got {blocks}")
    return LRNet(
        LRNetConfig(scale=scale, channels=64, blocks=blocks, prompt_dim=prompt_dim, context=context, energy=energy)
    )


@register("lrnet_b")
def lrnet_b(*, scale: int, prompt_dim: int = 0, blocks: int = 16) -> LRNet:
    """About 4.8M parameters: the larger size, for a GPU."""
    return LRNet(LRNetConfig(scale=scale, channels=128, blocks=blocks, prompt_dim=prompt_dim))


@register("lrnet_t")
def lrnet_t(*, scale: int, prompt_dim: int = 0, context: int = 0, energy: bool = False, blocks: int = 2) -> LRNet:
    """A few thousand parameters: for tests and smoke runs only."""
    return LRNet(
        LRNetConfig(
            scale=scale, channels=8, blocks=blocks, t_features=4, prompt_dim=prompt_dim, context=context, energy=energy
        )
    )
