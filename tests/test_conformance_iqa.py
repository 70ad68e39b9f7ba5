"""Our MUSIQ, MANIQA, CLIP-IQA and CLIP tokenizer against pyiqa 0.1.16's, timm 1.0.31's and
openai-clip 1.0.1's own code (set SNAPSR_PYIQA_WHEEL, SNAPSR_TIMM_WHEEL, SNAPSR_CLIP_SDIST;
.ci/run fetches them from PyPI). The published weights are not on this machine, so each reference
model is built small with random weights, which ours then loads from the same state dict; the
architectures, preprocessing and score pooling must agree to float precision."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import smooth_image

PATHS = {k: os.environ.get(f"SNAPSR_{k}", "") for k in ("PYIQA_WHEEL", "TIMM_WHEEL", "CLIP_SDIST")}
pytestmark = pytest.mark.skipif(
    not all(p and Path(p).exists() for p in PATHS.values()),
    reason="set SNAPSR_PYIQA_WHEEL, SNAPSR_TIMM_WHEEL and SNAPSR_CLIP_SDIST (.ci/run does)",
)


@pytest.fixture(scope="module")
def ref():
    from .reference.pyiqa_ref import load

    with pytest.MonkeyPatch.context() as mp:
        yield load(mp, PATHS["PYIQA_WHEEL"], PATHS["TIMM_WHEEL"], PATHS["CLIP_SDIST"])


def randomise(module: torch.nn.Module, seed: int, std: float = 0.1) -> None:
    """Every parameter and norm statistic random, so that no layer can be skipped unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dtype.is_floating_point:
                p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if "norm" in name or "bn" in name else 0.0))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def images() -> list[torch.Tensor]:
    """Odd sizes on purpose: not multiples of 32, larger and smaller than MUSIQ's 384 and MANIQA's 224."""
    g = torch.Generator().manual_seed(1)
    out = []
    for h, w, seed in ((150, 200, 0), (241, 300, 1), (97, 410, 2)):
        x = torch.from_numpy(smooth_image(h, w, seed)).permute(2, 0, 1)[None].float() / 255
        out.append((x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1))
    return out


def test_tokenizer_matches_openai():
    from snapsr.eval.iqa.clip_tokenizer import ClipTokenizer

    pytest.importorskip("ftfy", reason="pip install -e .[conformance]")
    pytest.importorskip("regex", reason="pip install -e .[conformance]")
    from .reference.pyiqa_ref import clip_tokenizer_module

    mod, vocab = clip_tokenizer_module(PATHS["CLIP_SDIST"])
    theirs, ours = mod.SimpleTokenizer(str(vocab)), ClipTokenizer.from_file(vocab)
    texts = [
        "Good image",
        "Noise-free image",
        "High resolution image",
        "X X X Good photo..",
        "it's a 4K photo_of   the sea!!",
        "A&amp;B, 12345 <|endoftext|>",
        "sharp edges; blurry edges",
    ]
    for t in texts:
        assert ours.encode(t) == theirs.encode(t), t
    assert (ours.sot, ours.eot) == (theirs.encoder["<|startoftext|>"], theirs.encoder["<|endoftext|>"])


def test_musiq_matches_pyiqa(ref, tmp_path):
    from snapsr.eval.iqa.musiq import MUSIQ, WEIGHTS_FILE

    theirs = ref.MUSIQ(hidden_size=64, mlp_dim=96, num_heads=1, num_layers=2, pretrained=False).eval()
    randomise(theirs, 0, std=0.05)
    torch.save(theirs.state_dict(), tmp_path / WEIGHTS_FILE)
    ours = MUSIQ.from_files(tmp_path)
    with torch.no_grad():
        scores = [(ours(x), theirs(x)[:, 0]) for x in images()]
    for a, b in scores:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert len({round(float(b), 4) for _, b in scores}) == 3  # the images are told apart


def test_maniqa_matches_pyiqa(ref, tmp_path, monkeypatch):
    from snapsr.eval.iqa.maniqa import CHECKPOINTS, MANIQA

    def small_vit(name, pretrained=True):
        assert name == "vit_base_patch8_224"
        return ref.VisionTransformer(img_size=224, patch_size=8, embed_dim=64, depth=11, num_heads=1, mlp_ratio=2)

    monkeypatch.setattr(ref.MANIQA.__init__.__globals__["timm"], "create_model", small_vit)
    kw = dict(embed_dim=64, dim_mlp=48, num_heads=[4, 2], depths=[2, 1], window_size=4, pretrained=False)
    theirs = ref.MANIQA(scale=0.8, **kw).eval()
    randomise(theirs, 0, std=0.05)
    with torch.no_grad():
        theirs.fc_score[3].bias.fill_(0.5)  # keep the ReLU'd patch scores off zero
    file, scale = CHECKPOINTS["maniqa"]
    assert scale == 0.8
    torch.save(theirs.state_dict(), tmp_path / file)
    ours = MANIQA.from_files(tmp_path, "maniqa")
    with torch.no_grad():
        scores = [(ours(x), theirs(x)[:, 0]) for x in images()]
    for a, b in scores:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert len({round(float(b), 4) for _, b in scores}) == 3


def test_clipiqa_matches_pyiqa(ref, tmp_path):
    from snapsr.eval.iqa.clip_tokenizer import VOCAB_FILE
    from snapsr.eval.iqa.clipiqa import CLIPIQA, WEIGHTS_FILE

    from .reference.pyiqa_ref import clip_tokenizer_module

    clip_model = ref.CLIPIQA.__init__.__globals__["load"].__globals__["CLIP"]
    net = clip_model(32, 224, (1, 2, 1, 1), 8, None, 77, 49408, 64, 1, 2)
    randomise(net, 0, std=0.05)
    with torch.no_grad():
        net.logit_scale.fill_(np.log(100.0))
        # OpenAI's weights are float16; the reference casts to it, so the test weights are float16 values
        for v in net.state_dict().values():
            if v.dtype.is_floating_point:
                v.copy_(v.half().float())
        # saved as OpenAI saved theirs, a TorchScript archive (pyiqa cannot read a plain state dict by path)
        x, ids = torch.rand(1, 3, 64, 64), torch.randint(1, 49400, (2, 77))
        torch.jit.save(torch.jit.trace(net.eval(), (x, ids), check_trace=False), str(tmp_path / WEIGHTS_FILE))
    shutil.copy(clip_tokenizer_module(PATHS["CLIP_SDIST"])[1], tmp_path / VOCAB_FILE)
    theirs = ref.CLIPIQA(backbone=str(tmp_path / WEIGHTS_FILE)).eval()
    ours = CLIPIQA.from_files(tmp_path)
    with torch.no_grad():
        scores = [(ours(x), theirs(x)[:, 0]) for x in images()]
    for a, b in scores:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert len({round(float(b), 5) for _, b in scores}) == 3
