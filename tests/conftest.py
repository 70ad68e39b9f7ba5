from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 RGB image: smooth colour fields plus some edges and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.08, 2).tolist() + [rng.uniform(0, 6)]
        img[..., c] = 0.5 + 0.3 * np.sin(fx * xx + ph) * np.cos(fy * yy)
    img[(xx + yy) % 23 < 3] *= 0.6  # some sharp stripes
    img += rng.normal(0, 0.02, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def perturbed(cfg, seed: int):
    """A FlowSR of ``cfg`` whose every weight is moved a little (seeded): every layer matters (the tail
    and FiLM start at zero), so a test can see each one."""
    from snapsr.model.flow import FlowSR

    torch.manual_seed(seed)
    m = FlowSR(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def tiny_clip(folder) -> str:
    """A tiny random CLIP image tower saved as a local CLIP folder (seeded; nothing downloaded)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=8, projection_dim=8,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.CLIPVisionModelWithProjection(cfg).save_pretrained(folder)
    return str(folder)


@pytest.fixture()
def photo_dir(tmp_path: Path) -> Path:
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(smooth_image(96, 128, 0)).save(d / "a.png")
    Image.fromarray(smooth_image(80, 72, 1)).save(d / "b.jpg", quality=95)
    Image.fromarray(smooth_image(64, 100, 2)).save(d / "sub" / "c.webp")
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _dtype_cache(tmp_path_factory, monkeypatch):
    """--dtype auto's measured choice goes to a per-session file, not the user's cache."""
    from snapsr.infer import device

    path = tmp_path_factory.getbasetemp() / "dtype.json"
    monkeypatch.setattr(device, "cache_file", lambda: path)


@pytest.fixture()
def tiny_weights(tmp_path: Path) -> Path:
    """A deterministic tiny x4 model with non-trivial weights, saved as a snapsr weights file."""
    from snapsr.model import weights
    from snapsr.model.config import FlowConfig

    cfg = FlowConfig(scale=4, sigma_p=0.2, backbone="lrnet_t")
    model = perturbed(cfg, 1)
    path = tmp_path / "tiny.safetensors"
    weights.save(path, model, weights.flow_card(cfg, kind="teacher", default_steps=2))
    return path
