"""Learned metrics from weights on the user's disk (nothing is downloaded).

LPIPS (Zhang et al. 2018, v0.1, VGG variant): our own VGG16 feature extractor laid out as
torchvision's ``vgg16().features`` so that its published state dict loads, plus the published
linear heads. Files, in the folder given by ``--metric-weights``:

* ``vgg16-397923af.pth``: torchvision's ImageNet VGG16 weights;
* ``vgg.pth``: the LPIPS v0.1 linear layers (``lpips/weights/v0.1/vgg.pth`` in the lpips package).

Both are read with ``torch.load(weights_only=True)``: tensors only, no code. Layer widths are
taken from the files, so tests can use tiny random weights of the same layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VGG_FILE = "vgg16-397923af.pth"
LPIPS_FILE = "vgg.pth"
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
    def from_files(cls, folder: Path) -> LPIPS:
        vgg_path, lin_path = folder / VGG_FILE, folder / LPIPS_FILE
        for p, what in ((vgg_path, "torchvision's VGG16 ImageNet weights"), (lin_path, "LPIPS v0.1 VGG linear layers")):
            if not p.is_file():
                raise FileNotFoundError(f"LPIPS needs {p.name} ({what}) in {folder}")
        vgg = VGG16Features.from_state_dict(torch.load(vgg_path, map_location="cpu", weights_only=True))
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


def learned_metrics(folder: Path):
    """``(sr, hr) -> {"lpips": ...}`` for uint8 ``HxWx3`` arrays, from the weights in ``folder``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--metric-weights: no such folder {folder}")
    lpips = LPIPS.from_files(folder)

    def score(sr: np.ndarray, hr: np.ndarray) -> dict[str, float]:
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
        with torch.no_grad():
            return {"lpips": float(lpips(t(sr), t(hr))[0])}

    return score
