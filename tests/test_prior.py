"""The latent backbone on a Stable Diffusion prior, with tiny random configs of the kind diffusers
tests with (built here, nothing downloaded): the same contract, recipes, files and upscaler as LRNet."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from snapsr.cli import main  # noqa: E402
from snapsr.infer.upscaler import Upscaler  # noqa: E402
from snapsr.model import weights  # noqa: E402
from snapsr.model.config import FlowConfig  # noqa: E402
from snapsr.model.flow import FlowSR  # noqa: E402
from snapsr.train import recipes  # noqa: E402
from snapsr.train.config import DataConfig, TrainConfig  # noqa: E402
from snapsr.train.gtasr import GTASRConfig, GTASRRunConfig  # noqa: E402
from snapsr.train.losses.perception import PerceptionConfig  # noqa: E402
from snapsr.train.rcod import RCODConfig, RCODRunConfig  # noqa: E402
from tests.conftest import tiny_clip  # noqa: E402

TINY = FlowConfig(scale=4, sigma_p=0.0, backbone="sd_tiny", precond=False)


def _train(out, steps=2) -> TrainConfig:
    return TrainConfig(
        out_dir=str(out), steps=steps, batch_size=2, lr=1e-3, warmup=1, precision="fp32",
        ckpt_every=steps, val_every=steps, val_steps=(1,),
    )  # fmt: skip


def _data(photo_dir) -> DataConfig:
    return DataConfig(train_dir=str(photo_dir), val_dir=str(photo_dir), crop=32, val_crop=32, val_images=1)


def test_forward_backward_trains_only_lora_and_heads():
    m = FlowSR(TINY)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "null_token" in n for n in trainable)
    lr = torch.rand(2, 3, 7, 9)  # odd sizes: the wrapper pads to the VAE's multiple
    cond = m.condition(lr)
    x_0 = m.start(cond, torch.randn_like(cond))
    for t in (0.3, torch.rand(2), torch.rand(2, 1, 28, 36)):
        out = m.one_step(x_0, t, cond)
        assert out.shape == (2, 3, 28, 36) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if "lora_B" in n)
    assert all(p.grad is None for n, p in m.named_parameters() if not p.requires_grad)
    with pytest.raises(ValueError, match="precond"):
        FlowSR(dataclasses.replace(TINY, precond=True))


def test_weights_hold_the_lora_not_the_prior_and_reload(tmp_path):
    m = FlowSR(TINY)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.add_(0.01 * torch.randn_like(p))
    path = weights.save(tmp_path / "sd.safetensors", m, weights.flow_card(TINY, kind="student"))
    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())
    assert names and all("lora_" in k or "null_token" in k for k in names)
    loaded, card = weights.load_flow(path)
    assert card.flow == TINY
    x = torch.rand(1, 3, 8, 8)
    up_a = Upscaler(m, card.to_dict() | {"kind": "student"}).upscale_tensor(x, realism=0.5)
    up_b = Upscaler.from_pretrained(path).upscale_tensor(x, realism=0.5)
    assert torch.allclose(up_a, up_b, atol=1e-5)


def test_tiled_equals_untiled_and_cli_upscales(tmp_path):
    m = FlowSR(TINY)
    path = weights.save(tmp_path / "sd.safetensors", m, weights.flow_card(TINY, kind="student"))
    x = torch.rand(1, 3, 20, 24)
    whole = Upscaler.from_pretrained(path).upscale_tensor(x, realism=0.4)
    one_tile = Upscaler.from_pretrained(path, tile=32, tile_overlap=8).upscale_tensor(x, realism=0.4)
    tiled = Upscaler.from_pretrained(path, tile=12, tile_overlap=4).upscale_tensor(x, realism=0.4)
    assert whole.shape == tiled.shape == (1, 3, 80, 96) and torch.equal(whole, one_tile)
    # Tiles bound the memory; unlike LRNet's, the prior's GroupNorm and self-attention see one tile at
    # a time, so a tiled output is not the whole-image one (with random weights, not even close)
    assert torch.isfinite(tiled).all() and 0 <= tiled.min() and tiled.max() <= 1
    from PIL import Image

    Image.fromarray((torch.rand(16, 16, 3) * 255).byte().numpy()).save(tmp_path / "a.png")
    args = ["upscale", str(tmp_path / "a.png"), "--weights", str(path), "-o", str(tmp_path / "o")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "o" / "a_x4.png").size == (64, 64)


def test_rcod_on_the_prior_groups_in_latent_space_with_prompts_and_estimator(photo_dir, tmp_path):
    cfg = RCODRunConfig(
        flow=TINY,
        rcod=RCODConfig(groups=2, calib_batches=2, prompt=True, estimator=True, space="latent"),
        perception=PerceptionConfig(w_hfp=0.1),  # VPD-SR's HFP on the decoded pixels
        data=_data(photo_dir),
        train=_train(tmp_path / "r"),
    )
    res = recipes.get("rcod").train(cfg, progress=False)
    assert all(torch.isfinite(torch.tensor(v)) for v in res.losses.values())
    model, card = weights.load_flow(tmp_path / "r" / "ema.safetensors")
    b = card.record["rcod"]["boundaries_psnr"]
    assert len(b) == 1 and -1.0 <= b[0] <= 1.0  # a cosine similarity, not a PSNR
    assert card.record["prior"] == "tiny" and card.record["prior_sha256"] == "tiny"  # the base, named
    assert model.cfg.prompt and model.backbone.prompt is not None
    out = Upscaler(model, card).upscale_tensor(torch.rand(1, 3, 8, 8), realism="auto")
    assert out.shape == (1, 3, 32, 32)


def test_gtasr_supervised_dial_trains_and_velocity_recipes_refuse(photo_dir, tmp_path):
    common = dict(flow=TINY, data=_data(photo_dir), train=_train(tmp_path / "g"))
    cfg = GTASRRunConfig(gtasr=GTASRConfig(w_consistency=0.0, w_ta=0.0), **common)
    recipes.get("gtasr").train(cfg, progress=False)
    with pytest.raises(ValueError, match="one-step student's"):
        recipes.get("gtasr").train(GTASRRunConfig(**{**common, "train": _train(tmp_path / "g2")}), progress=False)
    with pytest.raises(ValueError, match="pixel|latent"):
        RCODConfig(space="clip")


def test_missing_prior_is_a_clear_error_and_dry_run_prints_the_config(tmp_path):
    cfg = dataclasses.replace(TINY, backbone="sd_latent", backbone_args={"prior": str(tmp_path / "nowhere")})
    with pytest.raises(FileNotFoundError, match="nowhere: no unet/"):
        FlowSR(cfg)
    with pytest.raises(FileNotFoundError, match="backbone_args.prior"):
        FlowSR(dataclasses.replace(cfg, backbone_args={}))
    args = ["train", "distill", "--recipe", "rcod", "--config", "configs/sd_rcod.toml", "--dry-run"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert '"backbone": "sd_latent"' in res.output and '"space": "latent"' in res.output
    with pytest.raises(ValueError, match="backbone_args"):
        FlowConfig(backbone_args={"prior": {"nested": 1}})


def test_rcod_visual_prompt_from_a_frozen_clip_of_the_lq_image(photo_dir, tmp_path):
    """RCOD's prompt as published: CLIP image tokens of the LQ image in the UNet's cross-attention,
    the tower frozen and left out of the weights file, named with its hash in the card."""
    clip = tiny_clip(tmp_path / "clip")
    flow = dataclasses.replace(TINY, prompt=True, prompt_tokens=4, prompt_clip=clip)
    m = FlowSR(flow)
    cond = m.condition(torch.rand(2, 3, 8, 8))
    tokens = m.prompt(cond)
    assert tokens.shape == (2, 8, flow.prompt_dim)  # the degradation encoder's 4, then CLIP's 4
    assert not torch.equal(tokens[:, 4:], m.prompt(m.condition(torch.rand(2, 3, 8, 8)))[:, 4:])  # they see the LQ
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert any(n.startswith("clip_tokens.proj") for n in trainable)
    assert not any(".vision." in f".{n}" for n in trainable)
    m.train()
    assert not m.clip_tokens.vision.training  # frozen in eval mode whatever the recipe's mode
    m.one_step(m.start(cond, torch.zeros_like(cond)), 0.5, cond).square().mean().backward()
    assert m.clip_tokens.proj.weight.grad is not None
    # RCOD trains with it; the file holds the projection, not the tower; the card names the folder
    cfg = RCODRunConfig(
        flow=flow,
        rcod=RCODConfig(groups=2, calib_batches=2, prompt=True, estimator=True, space="latent"),
        data=_data(photo_dir),
        train=_train(tmp_path / "r"),
    )
    recipes.get("rcod").train(cfg, progress=False)
    path = tmp_path / "r" / "ema.safetensors"
    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())
    assert any(k.startswith("clip_tokens.proj") for k in names) and not any("vision" in k for k in names)
    model, card = weights.load_flow(path)
    assert card.record["prompt_clip"] == clip and len(card.record["prompt_clip_sha256"]) == 64
    x = torch.rand(1, 3, 8, 8)
    a = Upscaler(model, card).upscale_tensor(x, realism=0.5)
    b = Upscaler.from_pretrained(path).upscale_tensor(x, realism=0.5)
    assert torch.allclose(a, b, atol=1e-5)
    # a missing CLIP folder names the setting; CLIP tokens without the prompt are refused
    with pytest.raises(FileNotFoundError, match="flow.prompt_clip|not a CLIP folder"):
        FlowSR(dataclasses.replace(flow, prompt_clip=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match="needs flow.prompt"):
        dataclasses.replace(flow, prompt=False)


def test_vpd_distils_a_multi_step_teacher_into_the_latent_student(photo_dir, tmp_path):
    """VPD-SR as published: a one-step student on the prior distilled from a multi-step teacher's
    outputs, with CLIP semantic supervision and HFP on the decoded pixels and a patch discriminator."""
    from snapsr.train.oftsr import OFTSRConfig
    from snapsr.train.vpd import VPDRunConfig

    tcfg = FlowConfig(scale=4, backbone="lrnet_t")
    teacher = weights.save(tmp_path / "t.safetensors", FlowSR(tcfg), weights.flow_card(tcfg, kind="teacher"))
    clip = tiny_clip(tmp_path / "clip")
    cfg = VPDRunConfig(
        teacher=str(teacher),
        student=TINY,
        oftsr=OFTSRConfig(teacher_steps=2),
        perception=PerceptionConfig(w_hfp=0.1, w_adv=0.01, adv_start=1, adv_ramp=1, d_channels=8, clip_path=clip),
        data=_data(photo_dir),
        train=_train(tmp_path / "v"),
    )
    res = recipes.get("vpd").train(cfg, progress=False)
    assert all(torch.isfinite(torch.tensor(v)) for v in res.losses.values())
    model, card = weights.load_flow(tmp_path / "v" / "ema.safetensors")
    assert model.cfg.backbone == "sd_tiny" and card.student
    assert card.record["distillation"] == "outputs" and card.record["perception"]["w_semantic"] > 0
    assert Upscaler(model, card).upscale_tensor(torch.rand(1, 3, 8, 8), realism=0.7).shape == (1, 3, 32, 32)
    # the prior cannot be the teacher (it predicts restorations, not velocities), nor a student the teacher
    with pytest.raises(ValueError, match="one-step student's"):
        recipes.get("vpd").train(dataclasses.replace(cfg, teacher=str(tmp_path / "v" / "ema.safetensors")))


def test_vae_encoder_lora_starts_as_the_identity_trains_and_reloads(tmp_path):
    plain = FlowSR(TINY)
    cfg = dataclasses.replace(TINY, backbone_args={"vae_lora_rank": 2})
    m = FlowSR(cfg)
    m.load_state_dict(plain.state_dict(), strict=False)  # the same UNet LoRA and heads
    cond = m.condition(torch.rand(1, 3, 8, 8))
    with torch.no_grad():
        assert torch.allclose(m.one_step(cond, 0.5, cond), plain.one_step(cond, 0.5, cond), atol=1e-6)
    vae_lora = [n for n, p in m.named_parameters() if p.requires_grad and ".vae.encoder." in n]
    assert vae_lora and all("lora_" in n for n in vae_lora)
    assert not any(p.requires_grad for n, p in m.named_parameters() if ".vae.decoder." in n)
    m.one_step(cond, 0.5, cond).square().mean().backward()
    grads = dict(m.named_parameters())
    assert any(grads[n].grad is not None and grads[n].grad.abs().sum() > 0 for n in vae_lora if "lora_B" in n)
    with torch.no_grad():
        for n in vae_lora:
            grads[n].add_(0.01)
    path = weights.save(tmp_path / "v.safetensors", m, weights.flow_card(cfg, kind="student"))
    loaded, _ = weights.load_flow(path)
    with torch.no_grad():
        assert torch.allclose(loaded.one_step(cond, 0.5, cond), m.one_step(cond, 0.5, cond), atol=1e-5)
