"""No-reference learned metrics (MUSIQ, MANIQA, CLIP-IQA) from weight files on disk: the loaders,
the CLI path with and without HR, and the messages for missing files. Tiny random weights in the
published layouts stand in for the real ones (tests/test_conformance_iqa.py checks the layouts and
the arithmetic against pyiqa's own code)."""

import gzip
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from snapsr.cli import main

from .conftest import smooth_image

MERGES = [("o", "o"), ("i", "m"), ("im", "a"), ("e", "d"), ("g", "e</w>"), ("ima", "ge</w>")]


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            std = p[0].numel() ** -0.5 if p.dim() > 1 else 0.05  # fan-in scaled, so signals survive depth
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if "norm" in name or "bn" in name else 0.0))
        for name, b in module.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def tiny_iqa_weights(folder):
    """Small random MUSIQ, MANIQA and CLIP RN weights and a small BPE merges file, under the file
    names of the published ones."""
    from snapsr.eval.iqa import clip_tokenizer, clipiqa, maniqa, musiq

    folder.mkdir(parents=True, exist_ok=True)
    net = musiq.MUSIQ(musiq.MusiqConfig(dim=64, mlp_dim=64, layers=1))
    _randomise(net, 0)
    torch.save(net.state_dict(), folder / musiq.WEIGHTS_FILE)
    cfg = maniqa.ManiqaConfig(dim=64, vit_mlp=64, n_tab=1, swin_depths=(2,), swin_heads=(2,), swin_mlp=32)
    net = maniqa.MANIQA(cfg)
    _randomise(net, 1)
    with torch.no_grad():
        net.fc_score[3].bias.fill_(0.5)
    torch.save({"params": net.state_dict()}, folder / maniqa.CHECKPOINTS["maniqa"][0])  # pyiqa's wrapper key
    with gzip.open(folder / clip_tokenizer.VOCAB_FILE, "wt", encoding="utf-8") as f:
        f.write("#version: test\n" + "\n".join(" ".join(m) for m in MERGES) + "\n")
    cfg = clipiqa.ClipConfig(layers=(1, 1, 1, 1), width=8, embed_dim=32, vocab=514 + len(MERGES), text_width=64)
    net = clipiqa.ClipRN(cfg)
    _randomise(net, 2)
    with torch.no_grad():
        net.logit_scale.fill_(np.log(100.0))
    torch.save(net.state_dict(), folder / clipiqa.WEIGHTS_FILE)
    return folder


def test_tokenizer_applies_merges_by_rank(tmp_path):
    from snapsr.eval.iqa.clip_tokenizer import ClipTokenizer, byte_symbols

    path = tmp_path / "m.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("#version\n" + "\n".join(" ".join(m) for m in MERGES) + "\n")
    tok = ClipTokenizer.from_file(path)
    merged = {"".join(m): 512 + i for i, m in enumerate(MERGES)}
    assert len(byte_symbols()) == 256 and (tok.sot, tok.eot) == (512 + len(MERGES), 513 + len(MERGES))
    assert tok.encode("Image") == [merged["image</w>"]]  # i+m, im+a, g+e</w>, ima+ge</w>, case-folded
    assert tok.encode("good.") == [tok.encoder["g"], merged["oo"], tok.encoder["d</w>"], tok.encoder[".</w>"]]
    ids = tok(["image", "good"], context_length=8)
    assert ids.shape == (2, 8) and ids[0, :3].tolist() == [tok.sot, merged["image</w>"], tok.eot]
    assert ids[0, 3:].sum() == 0 and int(ids[1].argmax()) == 4  # the end token is the largest id
    with pytest.raises(ValueError, match="tokens"):
        tok(["a b c d e f g h"], context_length=8)


def test_no_reference_metrics_load_and_score(tmp_path):
    from snapsr.eval.iqa import METRICS

    folder = tiny_iqa_weights(tmp_path / "w")
    smooth = torch.from_numpy(smooth_image(120, 90, 0)).permute(2, 0, 1)[None].float() / 255
    noisy = (smooth + 0.2 * torch.randn(smooth.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    for name in ("musiq", "maniqa", "clipiqa"):
        net = METRICS[name].load(folder)
        with torch.no_grad():
            a, b = net(smooth), net(noisy)
            both = net(torch.cat([smooth, noisy]))
        assert a.shape == (1,) and torch.isfinite(a).all(), name
        assert abs(a.item() - b.item()) > 1e-6, name  # the input reaches the score
        torch.testing.assert_close(both, torch.cat([a, b]), rtol=1e-4, atol=1e-6)  # batched = one by one


def test_clip_reads_openai_torchscript_archive(tmp_path):
    from snapsr.eval.iqa.clipiqa import ClipRN, load_clip_state_dict

    folder = tiny_iqa_weights(tmp_path / "w")
    sd = torch.load(folder / "RN50.pt", weights_only=True)

    class Traced(ClipRN):
        def forward(self, x):
            return self.encode_image(x)

    net = Traced(ClipRN.from_state_dict(sd).cfg)
    net.load_state_dict(sd)
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 64, 64)), str(tmp_path / "scripted.pt"))
    back = load_clip_state_dict(tmp_path / "scripted.pt")
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_clip_state_dict(tmp_path / "junk.pt")


def _folder(tmp_path, name, images):
    d = tmp_path / name
    d.mkdir()
    for stem, img in images.items():
        Image.fromarray(img).save(d / f"{stem}.png")
    return d


def test_eval_no_reference_without_hr(tmp_path):
    folder = tiny_iqa_weights(tmp_path / "w")
    rng = np.random.default_rng(0)
    noisy = np.clip(smooth_image(112, 208, 1).astype(int) + rng.integers(-40, 41, (112, 208, 3)), 0, 255)
    sr = _folder(tmp_path, "sr", {"a": smooth_image(112, 208, 0), "b": noisy.astype(np.uint8)})
    args = ["eval", "--sr", f"mine={sr}", "--learned", "musiq,maniqa,clipiqa", "--metric-weights", str(folder)]
    res = CliRunner().invoke(main, [*args, "--out-dir", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "o" / "results.json").read_text())["mine"]
    assert set(data["per_image"]) == {"a", "b"}
    assert set(data["mean"]) == {"niqe", "spikes", "musiq", "maniqa", "clipiqa"}  # no PSNR without HR
    assert all(np.isfinite(v) for v in data["mean"].values())
    assert data["per_image"]["a"]["clipiqa"] != data["per_image"]["b"]["clipiqa"]
    # with HR the same metrics come beside the full-reference ones
    hr = _folder(tmp_path, "hr", {"a": smooth_image(112, 208, 0), "b": smooth_image(112, 208, 1)})
    res = CliRunner().invoke(main, [*args, "--hr", str(hr), "--out-dir", str(tmp_path / "o2")])
    assert res.exit_code == 0, res.output
    mean = json.loads((tmp_path / "o2" / "results.json").read_text())["mine"]["mean"]
    assert {"psnr_y", "musiq", "clipiqa"} <= set(mean)


def test_eval_lr_without_hr_runs_the_model(tmp_path, tiny_weights):
    folder = tiny_iqa_weights(tmp_path / "w")
    lr = _folder(tmp_path, "lr", {"a": smooth_image(30, 30, 0)})
    res = CliRunner().invoke(
        main,
        ["eval", "--lr", str(lr), "--weights", str(tiny_weights), "--learned", "clipiqa", "--metric-weights",
         str(folder), "--out-dir", str(tmp_path / "o"), "--strip", str(tmp_path / "strip.png")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "strip.png").width > 0  # bicubic and the model, no HR crop
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert "bicubic" in data and len(data) == 2
    assert all(set(d["mean"]) == {"niqe", "spikes", "clipiqa"} for d in data.values())


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    folder = tiny_iqa_weights(tmp_path / "w")
    sr = _folder(tmp_path, "sr", {"a": smooth_image(64, 64, 0)})
    base = ["eval", "--sr", str(sr), "--metric-weights", str(folder), "--learned"]
    (folder / "bpe_simple_vocab_16e6.txt.gz").unlink()
    res = CliRunner().invoke(main, [*base, "clipiqa"])
    assert res.exit_code != 0 and "bpe_simple_vocab_16e6.txt.gz" in res.output and "openai-clip" in res.output
    (folder / "musiq_koniq_ckpt-e95806b9.pth").unlink()
    res = CliRunner().invoke(main, [*base, "musiq"])
    assert res.exit_code != 0 and "musiq_koniq_ckpt-e95806b9.pth" in res.output
    res = CliRunner().invoke(main, [*base, "maniqa-pipal"])
    assert res.exit_code != 0 and "MANIQA_PIPAL-ae6d356b.pth" in res.output
    res = CliRunner().invoke(main, [*base, "lpips"])  # full-reference, no --hr
    assert res.exit_code != 0 and "need --hr" in res.output
    res = CliRunner().invoke(main, [*base, "brisque"])
    assert res.exit_code != 0 and "unknown learned metric" in res.output
    # no --metric-weights: pyiqa's cache under TORCH_HOME is where it looks, and says so
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    res = CliRunner().invoke(main, ["eval", "--sr", str(sr), "--learned", "maniqa"])
    assert res.exit_code != 0 and "ckpt_koniq10k.pt" in res.output and str(tmp_path / "torch_home") in res.output
    (tmp_path / "torch_home" / "hub" / "pyiqa").mkdir(parents=True)
    (tmp_path / "torch_home" / "hub" / "pyiqa" / "ckpt_koniq10k.pt").write_bytes(
        (folder / "ckpt_koniq10k.pt").read_bytes()
    )
    res = CliRunner().invoke(main, ["eval", "--sr", str(sr), "--learned", "maniqa"])
    assert res.exit_code == 0 and "maniqa" in res.output
