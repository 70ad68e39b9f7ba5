"""Learned full-reference metrics from weights on the user's disk (nothing is downloaded).

LPIPS (Zhang et al. 2018, v0.1, VGG variant): our own VGG16 feature extractor laid out as
torchvision's ``vgg16().features`` so that its published state dict loads, plus the published
linear heads. Files, in the folder given by ``--metric-weights``:

* ``vgg16-397923af.pth``: torchvision's ImageNet VGG16 weights;
* ``vgg.pth``: the LPIPS v0.1 linear layers (``lpips/weights/v0.1/vgg.pth`` in the lpips package).

DISTS (Ding et al. 2020): the same VGG16 with its max-pools replaced by L2 pooling, and the
published per-channel weights ``alpha``/``beta`` in ``DISTS_weights.pt`` (``weights.pt`` of the
DISTS_pytorch package, renamed). As in its reference code, images whose shorter side exceeds
256 are resized to 256 first.

All are read with ``torch.load(weights_only=True)``: tensors only, no code. Layer widths are
taken from the files, so tests can use tiny random weights of the same layout.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from snapsr.eval.iqa.files import Folders, need

VGG_FILE = "vgg16-397923af.pth"
LPIPS_FILE = "vgg.pth"
DISTS_FILE = "DISTS_weights.pt"
METRICS = ("lpips", "dists")
_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # conv indices in vgg16().features
_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


class VGG16Features(nn.Module):
    """``vgg16().features[:30]`` with widths read from a state dict."""

    def __init__(self, widths: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        convs = iter(widths)
        for i in range(30):
            if i in _CONVS:
                c = next(convs)
                layers.append(nn.Conv2d(c_in, c, 3, padding=1))
                c_in = c
            elif i in (4, 9, 16, 23):
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)

    @classmethod
    def from_state_dict(cls, sd: dict) -> VGG16Features:
        widths = [sd[f"features.{i}.weight"].shape[0] for i in _CONVS]
        net = cls(widths)
        net.load_state_dict({k: v for k, v in sd.items() if k.startswith("features.") and int(k.split(".")[1]) < 30})
        return net

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                taps.append(x)
        return taps


class LPIPS(nn.Module):
    # LPIPS's input normalisation for [-1, 1] images
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def __init__(self, vgg: VGG16Features, heads: list[torch.Tensor]):
        super().__init__()
        self.vgg = vgg.eval().requires_grad_(False)
        self.heads = nn.ParameterList(nn.Parameter(h, requires_grad=False) for h in heads)

    @classmethod
    def from_files(cls, folder: Folders) -> LPIPS:
        vgg = _load_vgg(folder, "LPIPS")
        lin_path = need(folder, LPIPS_FILE, "LPIPS v0.1 VGG linear layers", "LPIPS")
        lin = torch.load(lin_path, map_location="cpu", weights_only=True)
        heads = [lin[f"lin{i}.model.1.weight"] for i in range(5)]
        return cls(vgg, heads)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance per image of ``a`` and ``b``, ``(B,3,H,W)`` in [0, 1]; differentiable (a loss term too)."""

        def prep(x):
            return ((x * 2 - 1) - self.shift.to(x)) / self.scale.to(x)

        fa, fb = self.vgg(prep(a)), self.vgg(prep(b))
        total = 0
        for xa, xb, w in zip(fa, fb, self.heads):
            na = xa / (xa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = xb / (xb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + F.conv2d((na - nb) ** 2, w).mean((-2, -1))
        return total.view(-1)


def _load_vgg(folder: Folders, metric: str) -> VGG16Features:
    path = need(folder, VGG_FILE, "torchvision's VGG16 ImageNet weights", metric)
    return VGG16Features.from_state_dict(torch.load(path, map_location="cpu", weights_only=True))


class L2Pool(nn.Module):
    """DISTS's anti-aliased pooling: sqrt of a Hann-weighted 3x3 average of x^2, stride 2."""

    def __init__(self):
        super().__init__()
        a = torch.hann_window(5, periodic=False, dtype=torch.float64)[1:-1]
        g = a[:, None] * a[None, :]
        self.register_buffer("kernel", (g / g.sum()).float()[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel.to(x.dtype).expand(x.shape[1], 1, 3, 3)
        return (F.conv2d(x * x, k, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


class DISTS(nn.Module):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def __init__(self, vgg: VGG16Features, alpha: torch.Tensor, beta: torch.Tensor):
        super().__init__()
        layers = list(vgg.features)
        for i in (4, 9, 16, 23):  # max-pools -> L2 pooling
            layers[i] = L2Pool()
        self.stages = (
            nn.ModuleList(nn.Sequential(*layers[a:b]) for a, b in ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)))
            .eval()
            .requires_grad_(False)
        )
        chns = [3] + [vgg.features[i].out_channels for i in (2, 7, 14, 21, 28)]
        if alpha.numel() != sum(chns) or beta.numel() != sum(chns):
            raise ValueError(f"DISTS weights have {alpha.numel()} channels; this VGG needs {sum(chns)}")
        total = alpha.sum() + beta.sum()
        self.alpha = [a.view(1, -1, 1, 1) for a in (alpha.flatten() / total).split(chns)]
        self.beta = [b.view(1, -1, 1, 1) for b in (beta.flatten() / total).split(chns)]

    @classmethod
    def from_files(cls, folder: Folders) -> DISTS:
        vgg = _load_vgg(folder, "DISTS")
        w = torch.load(need(folder, DISTS_FILE, "DISTS alpha/beta", "DISTS"), map_location="cpu", weights_only=True)
        return cls(vgg, w["alpha"], w["beta"])

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean.to(x)) / self.std.to(x)
        feats = [x]
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance per image of ``a`` and ``b``, ``(B,3,H,W)`` in [0, 1] (0: identical)."""
        if min(a.shape[-2:]) > 256:
            h, w = a.shape[-2:]
            size = (256, round(w * 256 / h)) if h <= w else (round(h * 256 / w), 256)
            a, b = (F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False) for x in (a, b))
        c1 = c2 = 1e-6
        d1 = d2 = 0
        for fa, fb, al, be in zip(self._features(a), self._features(b), self.alpha, self.beta):
            ma, mb = fa.mean((2, 3), keepdim=True), fb.mean((2, 3), keepdim=True)
            s1 = (2 * ma * mb + c1) / (ma**2 + mb**2 + c1)
            va, vb = ((fa - ma) ** 2).mean((2, 3), keepdim=True), ((fb - mb) ** 2).mean((2, 3), keepdim=True)
            cov = (fa * fb).mean((2, 3), keepdim=True) - ma * mb
            s2 = (2 * cov + c2) / (va + vb + c2)
            d1 = d1 + (al.to(s1) * s1).sum(1)
            d2 = d2 + (be.to(s2) * s2).sum(1)
        return (1 - (d1 + d2)).view(-1)
