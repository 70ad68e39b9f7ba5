"""A frozen CLIP image tower from a local folder, and RCOD's visual prompt tokens made with it.

The folder is in the Hugging Face layout (``config.json`` plus ``model.safetensors``, as
``CLIPModel.save_pretrained`` or a hub snapshot of e.g. ``openai/clip-vit-base-patch32`` writes
it); a full CLIP or a vision-only checkpoint works. Nothing is downloaded: a missing folder or
file is an error naming what is needed. Needs transformers (``pip install 'snapsr[clip]'``).
VPD-SR's semantic supervision (``train/losses/semantic.py``) loads its encoder here too.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# CLIP's published input normalisation (the same for every OpenAI CLIP)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def check_folder(path: str | Path, what: str, setting: str) -> Path:
    """``path`` as a CLIP folder, or a ``FileNotFoundError`` that names ``setting`` and the files needed."""
    if not str(path):
        raise FileNotFoundError(f"{what}: no path given; set {setting} to a local CLIP folder")
    p = Path(path).expanduser()
    if not p.is_dir() or not (p / "config.json").is_file():
        raise FileNotFoundError(
            f"{what}: {p} is not a CLIP folder; it needs config.json and model.safetensors "
            "(e.g. a local copy of openai/clip-vit-base-patch32 written by save_pretrained). "
            "snapsr never downloads weights."
        )
    if not any((p / f).is_file() for f in _WEIGHTS):
        raise FileNotFoundError(f"{what}: {p} has config.json but no model.safetensors")
    return p


def load_vision(path: str | Path, what: str, setting: str) -> nn.Module:
    """The frozen image tower (``CLIPVisionModelWithProjection``) of the CLIP in ``path``."""
    folder = check_folder(path, what, setting)
    try:
        from transformers import CLIPVisionModelWithProjection
    except ImportError as e:
        raise ImportError(f"{what} needs transformers: pip install 'snapsr[clip]'") from e
    vision = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True)
    return vision.eval().requires_grad_(False)


def folder_hash(path: str | Path) -> str:
    """sha256 of the folder's config and weights: what a card records of a frozen CLIP."""
    p = Path(path).expanduser()
    h = hashlib.sha256()
    for name in ("config.json", *_WEIGHTS):
        if (p / name).is_file():
            with open(p / name, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()


def clip_input(x: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """An image in [0, 1] resized to CLIP's input size and normalised as CLIP was trained."""
    x = F.interpolate(x.float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return (x - mean) / std


class ClipTokens(nn.Module):
    """RCOD's visual prompt from a frozen CLIP: the LQ image's patch tokens, pooled to a square grid
    of ``tokens`` and projected (trainable) to the prompt width ``dim``, fed to the backbone's
    cross-attention beside (or, for a latent prior, in place of) a text embedding.

    The tower is frozen and is not written to a weights file (``state_dict`` leaves it out, loading
    does not miss it); the card names its folder and hash (``card_record``).
    """

    def __init__(self, path: str, tokens: int, dim: int, scale: int):
        super().__init__()
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise ValueError(f"prompt tokens must be a square number, got {tokens}")
        self.vision = load_vision(path, "RCOD's CLIP prompt", "flow.prompt_clip")
        self.side, self.scale = side, scale
        self.image_size = self.vision.config.image_size
        self.proj = nn.Linear(self.vision.config.hidden_size, dim)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.card_record = {"prompt_clip": str(path), "prompt_clip_sha256": folder_hash(path)}
        self._register_state_dict_hook(_drop_vision)
        self.register_load_state_dict_post_hook(_vision_not_missing)

    def train(self, mode: bool = True):  # the tower stays in eval mode whatever the recipe's
        super().train(mode)
        self.vision.eval()
        return self

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond = up(LR)`` -> ``(B, tokens, dim)``; CLIP sees the LR image (up(LR) carries nothing more)."""
        lr = F.avg_pool2d(cond.float(), self.scale) if self.scale > 1 else cond.float()
        with torch.no_grad(), torch.autocast(cond.device.type, enabled=False):
            patches = self.vision(pixel_values=clip_input(lr, self.image_size, self.mean, self.std)).last_hidden_state
        patches = patches[:, 1:].float()  # without the class token
        B, P, C = patches.shape
        g = math.isqrt(P)
        grid = patches.transpose(1, 2).reshape(B, C, g, g)
        pooled = F.adaptive_avg_pool2d(grid, self.side).flatten(2).transpose(1, 2)  # (B, tokens, C)
        return self.proj(pooled)


def _drop_vision(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + "vision.")]:
        del state_dict[key]
    return state_dict


def _vision_not_missing(module, incompatible):
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if ".vision." not in f".{k}"]
