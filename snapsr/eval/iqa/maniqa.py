"""MANIQA (Yang et al., CVPRW 2022, NTIRE 2022 NR-IQA winner), as pyiqa computes ``maniqa``
(trained on KonIQ-10k) and ``maniqa-pipal``; about 0 to 1, higher is better.

Twenty 224x224 crops on a regular grid (an image with a side of 224 or less is first enlarged,
bilinear, to 225) go through a ViT-B/8; the tokens of its blocks 7 to 10 are stacked (3,072
channels per 8x8 patch) and refined by transposed ("channel") attention blocks, 1x1 convolutions
and two small Swin stages. Each patch of each crop gets a score and a weight; the image's score
is their weighted mean.

Files, in the folder given by ``--metric-weights`` (or pyiqa's cache): ``ckpt_koniq10k.pt``
(``maniqa``) or ``MANIQA_PIPAL-ae6d356b.pth`` (``maniqa-pipal``), pyiqa's state dicts of the
official checkpoints, ViT included. Widths, depths and window size are read from the file; the
residual weight of the Swin stages is not in it and follows pyiqa's per-dataset setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from snapsr.eval.iqa.files import load_state_dict, need

CHECKPOINTS = {  # metric name -> (file, Swin residual scale in pyiqa's config)
    "maniqa": ("ckpt_koniq10k.pt", 0.8),
    "maniqa-pipal": ("MANIQA_PIPAL-ae6d356b.pth", 0.13),
}
CROP, N_CROPS, TAPS = 224, 20, (6, 7, 8, 9)


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, mlp), nn.Linear(mlp, dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.attn.qkv(self.norm1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        x = x + self.attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class ViT(nn.Module):
    """timm's ``vit_base_patch8_224`` layout, run up to the last tapped block."""

    def __init__(self, dim: int, patch: int, n_tokens: int, depth: int, mlp: int):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, dim))
        self.blocks = nn.ModuleList(ViTBlock(dim, dim // 64, mlp) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos_embed
        taps = []
        for i, block in enumerate(self.blocks[: max(TAPS) + 1]):
            x = block(x)
            if i in TAPS:
                taps.append(x[:, 1:])
        return torch.cat(taps, 2)  # (B, patches, 4 * dim)


class TABlock(nn.Module):
    """MANIQA's transposed attention: channels attend to channels, each a vector over patches."""

    def __init__(self, n: int):
        super().__init__()
        self.c_q, self.c_k, self.c_v = nn.Linear(n, n), nn.Linear(n, n), nn.Linear(n, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, N)
        b, c, n = x.shape
        attn = (self.c_q(x) @ self.c_k(x).transpose(1, 2) * n**-0.5).softmax(-1)
        # the official code reshapes the (B, N, C) transpose straight to (B, C, N), mixing channels
        # and patches; the published weights were trained through exactly that, so it is kept
        return x + (attn @ self.c_v(x)).transpose(1, 2).reshape(b, c, n)


def relative_index(w: int) -> torch.Tensor:
    """Index into the ``(2w-1)^2`` relative position bias table for each pair in a ``w x w`` window."""
    yx = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    d = yx[:, :, None] - yx[:, None, :] + (w - 1)
    return d[0] * (2 * w - 1) + d[1]


def windows(x: torch.Tensor, w: int) -> torch.Tensor:
    b, h, wd, c = x.shape
    return x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)


def unwindows(x: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    b = x.shape[0] // ((h // w) * (wd // w))
    return x.view(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h, wd, -1)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp: int, res: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.Module()
        self.attn.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.attn.qkv, self.attn.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, mlp), nn.Linear(mlp, dim)
        self.heads, self.window, self.shift, self.res = heads, window, shift, res
        self.register_buffer("index", relative_index(window), persistent=False)
        mask = None
        if shift:  # windows that wrap round after the cyclic shift must not attend across the seam
            region = torch.zeros(1, res, res, 1)
            bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for i, (hs, ws) in enumerate((hs, ws) for hs in bands for ws in bands):
                region[:, hs, ws] = i
            r = windows(region, window)[..., 0]
            mask = (r[:, None, :] != r[:, :, None]).float() * -100.0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, res*res, C)
        b, n, c = x.shape
        h = self.norm1(x).view(b, self.res, self.res, c)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), (1, 2))
        h = windows(h, self.window)
        q, k, v = self.attn.qkv(h).view(len(h), -1, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.attn.relative_position_bias_table[self.index].permute(2, 0, 1)  # (heads, w*w, w*w)
        if self.mask is not None:
            nw = self.mask.shape[0]
            bias = (bias[None] + self.mask[:, None]).repeat(len(h) // nw, 1, 1, 1)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        h = self.attn.proj(h.transpose(1, 2).reshape(len(h), -1, c))
        h = unwindows(h, self.window, self.res, self.res)
        if self.shift:
            h = torch.roll(h, (self.shift, self.shift), (1, 2))
        x = x + h.reshape(b, n, c)
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp: int, res: int):
        super().__init__()
        window = min(window, res)
        shift = lambda i: window // 2 if i % 2 and res > window else 0  # noqa: E731
        self.blocks = nn.ModuleList(SwinBlock(dim, heads, window, shift(i), mlp, res) for i in range(depth))
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        self.res = res

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        b, n, c = x.shape
        x = F.relu(self.conv(x.transpose(1, 2).reshape(b, c, self.res, self.res)))
        return x.flatten(2).transpose(1, 2)


class Swin(nn.Module):
    def __init__(self, dim: int, depths, heads, window: int, mlp: int, res: int, scale: float):
        super().__init__()
        self.layers = nn.ModuleList(SwinStage(dim, d, h, window, mlp, res) for d, h in zip(depths, heads))
        self.downsample = nn.Conv2d(dim, dim, 3, 2, 1)  # in the checkpoint, unused by the model
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        for layer in self.layers:
            x = self.scale * layer(x) + x
        return x.transpose(1, 2).reshape(b, c, h, w)


def grid_crops(x: torch.Tensor, size: int = CROP, n: int = N_CROPS) -> torch.Tensor:
    """``n`` crops per image on a regular grid, as pyiqa's ``uniform_crop`` takes them."""
    h, w = x.shape[-2:]
    if min(h, w) <= size:
        x = F.interpolate(x, scale_factor=(size + 1) / min(h, w), mode="bilinear")
        h, w = x.shape[-2:]
    per_side = int(math.sqrt(n))
    sh, sw = (h - size) // per_side, (w - size) // per_side
    cells = [(i, j) for i in range(math.ceil(math.sqrt(n))) for j in range(math.ceil(math.sqrt(n)))][:n]
    crops = [x[..., i * sh : i * sh + size, j * sw : j * sw + size] for i, j in cells]
    return torch.stack(crops, 1).flatten(0, 1)


@dataclass(frozen=True)
class ManiqaConfig:
    dim: int = 768  # ViT width; the second Swin stage works at half of it
    patch: int = 8
    vit_mlp: int = 3072
    n_tab: int = 2  # transposed-attention blocks before each Swin
    swin_depths: tuple[int, ...] = (2, 2)
    swin_heads: tuple[int, ...] = (4, 4)
    window: int = 4
    swin_mlp: int = 768
    scale: float = 0.8  # residual weight of each Swin stage: not in the weights, set per checkpoint

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], scale: float) -> ManiqaConfig:
        dim, _, patch, _ = sd["vit.patch_embed.proj.weight"].shape
        if math.isqrt(sd["vit.pos_embed"].shape[1] - 1) * patch != CROP:
            raise ValueError(f"these MANIQA weights are not for {CROP}-pixel crops")
        depth = len({k.split(".")[2] for k in sd if k.startswith("vit.blocks.")})
        if depth <= max(TAPS):
            raise ValueError(f"MANIQA taps ViT blocks {TAPS}; these weights have {depth} blocks")
        swin = "swintransformer1.layers"
        n_stages = len({k.split(".")[2] for k in sd if k.startswith(f"{swin}.")})
        table = f"{swin}.0.blocks.0.attn.relative_position_bias_table"
        return cls(
            dim=dim,
            patch=patch,
            vit_mlp=sd["vit.blocks.0.mlp.fc1.weight"].shape[0],
            n_tab=len({k.split(".")[1] for k in sd if k.startswith("tablock1.")}),
            swin_depths=tuple(
                len({k.split(".")[4] for k in sd if k.startswith(f"{swin}.{i}.blocks.")}) for i in range(n_stages)
            ),
            swin_heads=tuple(
                sd[f"{swin}.{i}.blocks.0.attn.relative_position_bias_table"].shape[1] for i in range(n_stages)
            ),
            window=(math.isqrt(sd[table].shape[0]) + 1) // 2,
            swin_mlp=sd[f"{swin}.0.blocks.0.mlp.fc1.weight"].shape[0],
            scale=scale,
        )


class MANIQA(nn.Module):
    def __init__(self, cfg: ManiqaConfig):
        super().__init__()
        self.cfg = cfg
        self.res = CROP // cfg.patch
        dim, n = cfg.dim, (CROP // cfg.patch) ** 2
        # the ViT blocks after the last tap, its final norm and its classifier do not reach the score
        self.vit = ViT(dim, cfg.patch, n + 1, max(TAPS) + 1, cfg.vit_mlp)
        self.tablock1 = nn.ModuleList(TABlock(n) for _ in range(cfg.n_tab))
        self.tablock2 = nn.ModuleList(TABlock(n) for _ in range(cfg.n_tab))
        self.conv1 = nn.Conv2d(4 * dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim // 2, 1)
        swin = dict(depths=cfg.swin_depths, heads=cfg.swin_heads, window=cfg.window, mlp=cfg.swin_mlp, res=self.res)
        self.swintransformer1 = Swin(dim, scale=cfg.scale, **swin)
        self.swintransformer2 = Swin(dim // 2, scale=cfg.scale, **swin)
        half = dim // 2
        self.fc_score = nn.Sequential(nn.Linear(half, half), nn.ReLU(), nn.Dropout(), nn.Linear(half, 1), nn.ReLU())
        self.fc_weight = nn.Sequential(nn.Linear(half, half), nn.ReLU(), nn.Dropout(), nn.Linear(half, 1), nn.Sigmoid())
        self.eval().requires_grad_(False)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], scale: float) -> MANIQA:
        net = cls(ManiqaConfig.from_state_dict(sd, scale))
        # buffers the reference saves (recomputed here), and the ViT parts left out
        unused = ("relative_position_index", "attn_mask", "vit.norm.", "vit.head.", "vit.fc_norm.")
        keep = {k: v.float() for k, v in sd.items() if not any(u in k for u in unused)}
        keep = {k: v for k, v in keep.items() if not (k.startswith("vit.blocks.") and int(k.split(".")[2]) > max(TAPS))}
        net.load_state_dict(keep)
        return net

    @classmethod
    def from_files(cls, folder: Path, name: str = "maniqa") -> MANIQA:
        file, scale = CHECKPOINTS[name]
        path = need(folder, file, f"pyiqa's {name} checkpoint", name.upper())
        return cls.from_state_dict(load_state_dict(path, name.upper()), scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score per image of ``(B,3,H,W)`` in [0, 1]."""
        b = len(x)
        crops = grid_crops(x * 2 - 1)  # the reference's mean/std of 0.5
        f = self.vit(crops).transpose(1, 2)  # (B*crops, 4*dim, patches)
        for tab in self.tablock1:
            f = tab(f)
        f = self.swintransformer1(self.conv1(f.unflatten(2, (self.res, self.res))))
        f = f.flatten(2)
        for tab in self.tablock2:
            f = tab(f)
        f = self.swintransformer2(self.conv2(f.unflatten(2, (self.res, self.res))))
        f = f.flatten(2).transpose(1, 2)  # (B*crops, patches, dim/2)
        s, w = self.fc_score(f).view(b, -1), self.fc_weight(f).view(b, -1)
        return (w * s).sum(-1) / (w.sum(-1) + 1e-8)
