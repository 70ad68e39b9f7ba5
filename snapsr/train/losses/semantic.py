"""Explicit Semantic Supervision (VPD-SR): SR and HR must agree in a frozen CLIP image encoder.

The encoder loads from a local folder in the Hugging Face layout (``config.json`` plus
``model.safetensors``, as ``CLIPModel.save_pretrained`` or a hub snapshot of e.g.
``openai/clip-vit-base-patch32`` writes it); either a full CLIP or a vision-only checkpoint
works. Nothing is downloaded: a missing folder or file is an error naming what is needed.
Needs the ``clip`` extra (``pip install 'snapsr[clip]'``, i.e. transformers).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# CLIP's published input normalisation (the same for every OpenAI CLIP)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _check_folder(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not str(path):
        raise FileNotFoundError("semantic encoder: no path given; set perception.clip_path to a local CLIP folder")
    if not p.is_dir() or not (p / "config.json").is_file():
        raise FileNotFoundError(
            f"semantic encoder: {p} is not a CLIP folder; it needs config.json and model.safetensors "
            "(e.g. a local copy of openai/clip-vit-base-patch32 written by save_pretrained). "
            "snapsr never downloads weights."
        )
    if not any((p / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        raise FileNotFoundError(f"semantic encoder: {p} has config.json but no model.safetensors")
    return p


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
        folder = _check_folder(path)
        try:
            from transformers import CLIPVisionModelWithProjection
        except ImportError as e:
            raise ImportError("the semantic encoder needs transformers: pip install 'snapsr[clip]'") from e
        vision = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True)
        return cls(vision, vision.config.image_size)

    def train(self, mode: bool = True):  # always frozen, whatever the recipe's mode
        return super().train(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(x.float(), size=(self.image_size,) * 2, mode="bicubic", align_corners=False, antialias=True)
        out = self.vision(pixel_values=(x - self.mean) / self.std)
        return F.normalize(out.image_embeds, dim=-1), out.last_hidden_state[:, 1:]


def semantic_loss(encoder: SemanticEncoder, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """``1 - cos(e(SR), e(HR))`` on the projected embedding plus the patch tokens' normalised MSE."""
    e_sr, tok_sr = encoder(sr)
    with torch.no_grad():
        e_hr, tok_hr = encoder(hr)
    cos = (e_sr * e_hr).sum(-1)
    tokens = F.mse_loss(tok_sr, tok_hr) / tok_hr.pow(2).mean().clamp_min(1e-8)
    return (1 - cos).mean() + tokens
