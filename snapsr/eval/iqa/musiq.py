"""MUSIQ (Ke et al., ICCV 2021): a transformer over patches of the image at several scales, as pyiqa
computes ``musiq`` (trained on KonIQ-10k, about 0 to 100, higher is better).

The image, in [-1, 1], is taken at its own size and resized (bicubic, aspect kept) to longer
sides 224 and 384; each is cut into 32x32 patches (zero-padded TF-"SAME" style to a whole number).
A patch goes through a small weight-standardised ResNet stem into one token; tokens get a
hash-based spatial embedding (the patch grid mapped onto a 10x10 table) and a scale embedding,
and the class token's output is the score.

The reference pads each resized scale to a fixed sequence length and masks the padding out of
attention with logits of -1000, which leaves the softmax unchanged in float32; here the padding
is simply not made.

File, in the folder given by ``--metric-weights`` (or pyiqa's cache): ``musiq_koniq_ckpt-e95806b9.pth``,
pyiqa's conversion of the official KonIQ checkpoint. Widths and depths are read from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from snapsr.eval.iqa.files import load_state_dict, need

WEIGHTS_FILE = "musiq_koniq_ckpt-e95806b9.pth"
LONGER_SIDES = (224, 384)  # MUSIQ's resized scales; the native-resolution scale comes last


def same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow's "SAME" zero padding (the extra pixel goes to the bottom/right)."""
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class StdConv(nn.Conv2d):
    """Weight-standardised convolution (BiT), TF "SAME" padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(same_pad(x, self.kernel_size[0], self.stride[0]), w, self.bias, self.stride)


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1, self.gn1 = StdConv(c_in, c_in, 1, bias=False), nn.GroupNorm(32, c_in, eps=1e-4)
        self.conv2, self.gn2 = StdConv(c_in, c_in, 3, bias=False), nn.GroupNorm(32, c_in, eps=1e-4)
        self.conv3, self.gn3 = StdConv(c_in, c_out, 1, bias=False), nn.GroupNorm(32, c_out, eps=1e-4)
        self.conv_proj, self.gn_proj = StdConv(c_in, c_out, 1, bias=False), nn.GroupNorm(32, c_out, eps=1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.gn_proj(self.conv_proj(x))
        x = F.relu(self.gn1(self.conv1(x)))
        x = F.relu(self.gn2(self.conv2(x)))
        return F.relu(self.gn3(self.conv3(x)) + skip)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = (f(x).view(b, n, self.heads, -1).transpose(1, 2) for f in (self.query, self.key, self.value))
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, mlp_dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attention, self.mlp = Attention(dim, heads), Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Encoder(nn.Module):
    def __init__(self, dim: int, mlp_dim: int, heads: int, layers: int, grid: int, scales: int):
        super().__init__()
        self.posembed_input = nn.Module()
        self.posembed_input.position_emb = nn.Parameter(torch.zeros(1, grid * grid, dim))
        self.scaleembed_input = nn.Module()
        self.scaleembed_input.scale_emb = nn.Parameter(torch.zeros(scales, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.transformer = nn.ModuleDict({f"encoderblock_{i}": Block(dim, mlp_dim, heads) for i in range(layers)})
        self.encoder_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        x = x + self.posembed_input.position_emb[0, pos] + self.scaleembed_input.scale_emb[scale]
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1)
        for block in self.transformer.values():
            x = block(x)
        return self.encoder_norm(x)


def hashed_positions(grid: int, rows: int, cols: int) -> torch.Tensor:
    """Each patch's index in the ``grid x grid`` position table: the patch grid is mapped onto it
    by nearest-neighbour resizing (MUSIQ's hash-based spatial embedding)."""
    table = torch.arange(grid, dtype=torch.float32).view(1, 1, grid)
    r = F.interpolate(table, size=rows, mode="nearest").view(rows, 1)
    c = F.interpolate(table, size=cols, mode="nearest").view(1, cols)
    return (r * grid + c).long().flatten()


@dataclass(frozen=True)
class MusiqConfig:
    dim: int = 384
    mlp_dim: int = 1152
    layers: int = 14
    grid: int = 10  # the hashed position table is grid x grid
    patch: int = 32
    root: int = 64  # stem width
    n_classes: int = 1  # 1: a score (KonIQ); n: a distribution over ratings 1..n (AVA)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> MusiqConfig:
        dim, emb_in = sd["embedding.weight"].shape
        root = sd["conv_root.weight"].shape[0]
        scales = sd["transformer_encoder.scaleembed_input.scale_emb"].shape[0]
        if scales != len(LONGER_SIDES) + 1:
            raise ValueError(f"MUSIQ weights with {scales} scales; this MUSIQ uses {len(LONGER_SIDES) + 1}")
        return cls(
            dim=dim,
            mlp_dim=sd["transformer_encoder.transformer.encoderblock_0.mlp.fc1.weight"].shape[0],
            layers=len({k.split(".")[2] for k in sd if k.startswith("transformer_encoder.transformer.")}),
            grid=math.isqrt(sd["transformer_encoder.posembed_input.position_emb"].shape[1]),
            patch=4 * math.isqrt(emb_in // (4 * root)),  # the stem reduces a patch 4x, to 4*root channels
            root=root,
            n_classes=sd["head.weight" if "head.weight" in sd else "head.0.weight"].shape[0],
        )


class MUSIQ(nn.Module):
    def __init__(self, cfg: MusiqConfig):
        super().__init__()
        self.cfg = cfg
        self.conv_root = StdConv(3, cfg.root, 7, 2, bias=False)
        self.gn_root = nn.GroupNorm(32, cfg.root, eps=1e-6)
        self.block1 = Bottleneck(cfg.root, cfg.root * 4)
        self.embedding = nn.Linear(cfg.root * 4 * (cfg.patch // 4) ** 2, cfg.dim)
        n_scales = len(LONGER_SIDES) + 1
        self.transformer_encoder = Encoder(cfg.dim, cfg.mlp_dim, cfg.dim // 64, cfg.layers, cfg.grid, n_scales)
        self.head = nn.Linear(cfg.dim, cfg.n_classes)
        self.eval().requires_grad_(False)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> MUSIQ:
        net = cls(MusiqConfig.from_state_dict(sd))
        net.load_state_dict({k.replace("head.0.", "head."): v.float() for k, v in sd.items()})
        return net

    @classmethod
    def from_files(cls, folder: Path) -> MUSIQ:
        path = need(folder, WEIGHTS_FILE, "pyiqa's MUSIQ KonIQ-10k checkpoint", "MUSIQ")
        return cls.from_state_dict(load_state_dict(path, "MUSIQ"))

    def tokens(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patches ``(N, 3, p, p)`` of every scale of one ``(1,3,H,W)`` image in [-1, 1], with their
        position-table and scale indices."""
        h, w = img.shape[-2:]
        views = []
        for side in sorted(LONGER_SIDES):
            ratio = side / max(h, w)  # rounded as the reference rounds, so sizes agree at .5
            size = (round(h * ratio), round(w * ratio))
            views.append(F.interpolate(img, size=size, mode="bicubic", align_corners=False))
        views.append(img)
        patches, pos, scale = [], [], []
        p = self.cfg.patch
        for i, v in enumerate(views):
            v = same_pad(v, p, p)
            rows, cols = v.shape[-2] // p, v.shape[-1] // p
            patches.append(v.unfold(2, p, p).unfold(3, p, p)[0].permute(1, 2, 0, 3, 4).reshape(-1, 3, p, p))
            pos.append(hashed_positions(self.cfg.grid, rows, cols))
            scale.append(torch.full((rows * cols,), i))
        return torch.cat(patches), torch.cat(pos), torch.cat(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score per image of ``(B,3,H,W)`` in [0, 1]."""
        out = []
        for img in x.split(1):
            patches, pos, scale = self.tokens(img * 2 - 1)
            t = F.max_pool2d(same_pad(F.relu(self.gn_root(self.conv_root(patches))), 3, 2), 3, 2)
            t = self.block1(t).permute(0, 2, 3, 1).flatten(1)  # TF's (h, w, c) order
            t = self.transformer_encoder(self.embedding(t)[None], pos.to(x.device), scale.to(x.device))
            q = self.head(t[:, 0])
            if q.shape[-1] > 1:  # a distribution over ratings 1..n (AVA): its mean
                q = (q.softmax(-1) * torch.arange(1, q.shape[-1] + 1, device=q.device)).sum(-1, keepdim=True)
            out.append(q[:, 0])
        return torch.cat(out)
