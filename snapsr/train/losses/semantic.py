"""Explicit Semantic Supervision (VPD-SR): SR and HR must agree in a frozen CLIP image encoder.

The encoder loads from a local CLIP folder (``snapsr/model/clip.py``: the Hugging Face layout,
never downloaded; a missing folder or file is an error naming what is needed). Needs the ``clip``
extra (``pip install 'snapsr[clip]'``, i.e. transformers).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from snapsr.model.clip import CLIP_MEAN, CLIP_STD, clip_input, load_vision


class SemanticEncoder(nn.Module):
    """A frozen CLIP image tower: ``forward(x in [0,1]) -> (unit embedding, patch tokens)``."""

    def __init__(self, vision: nn.Module, image_size: int):
        super().__init__()
        self.vision = vision.eval().requires_grad_(False)
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_path(cls, path: str | Path) -> SemanticEncoder:
        vision = load_vision(path, "semantic encoder", "perception.clip_path")
        return cls(vision, vision.config.image_size)

    def train(self, mode: bool = True):  # always frozen, whatever the recipe's mode
        return super().train(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.vision(pixel_values=clip_input(x, self.image_size, self.mean, self.std))
        return F.normalize(out.image_embeds, dim=-1), out.last_hidden_state[:, 1:]


def semantic_loss(encoder: SemanticEncoder, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """``1 - cos(e(SR), e(HR))`` on the projected embedding plus the patch tokens' normalised MSE."""
    e_sr, tok_sr = encoder(sr)
    with torch.no_grad():
        e_hr, tok_hr = encoder(hr)
    cos = (e_sr * e_hr).sum(-1)
    tokens = F.mse_loss(tok_sr, tok_hr) / tok_hr.pow(2).mean().clamp_min(1e-8)
    return (1 - cos).mean() + tokens
