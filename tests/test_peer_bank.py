"""The peer bank: degraded training tiles with another upscaler's output as the realistic-end target."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snapsr.cli import main
from snapsr.degrade import DegradeConfig
from snapsr.model import weights
from snapsr.model.config import FlowConfig
from snapsr.train import recipes
from snapsr.train.gtasr import GTASRConfig, GTASRLoss, GTASRRunConfig, train_gtasr
from snapsr.train.losses.pixel import charbonnier, dial_pixel_loss
from snapsr.train.peer_bank import MANIFEST, PeerBankCrops, build_bank, tiles_of
from snapsr.train.rcod import RCODRunConfig
from tests.conftest import perturbed
from tests.test_students import tiny_data, tiny_train


def nearest_peer(img: np.ndarray) -> np.ndarray:
    """A stand-in upscaler whose output is known exactly from its input: nearest x4."""
    return img.repeat(4, axis=1).repeat(4, axis=2)


def test_tiles_cover_the_image_without_overlap_in_multiples_of_the_scale():
    img = np.zeros((1537, 2050, 3), np.uint8)
    tiles = tiles_of(img, 1024, 4)
    ys = sorted({y for y, _, _ in tiles})
    xs = sorted({x for _, x, _ in tiles})
    assert ys == [0, 768] and xs == [0, 680, 1360]  # 2 x 3 equal spans, each <= 1024 and a multiple of 4
    for _, _, t in tiles:
        assert t.shape[0] % 4 == 0 and t.shape[1] % 4 == 0 and max(t.shape[:2]) <= 1024
    assert sum(t.shape[0] * t.shape[1] for _, _, t in tiles) >= 0.99 * 1537 * 2050


def test_build_resumes_after_a_kill_and_adds_passes(photo_dir, tmp_path):
    calls = []

    def dying_peer(img):
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill in the middle of the third pair
        calls.append(img.shape)
        return nearest_peer(img)

    cfg = DegradeConfig(clean_share=0.5, light_share=0.25)
    bank = tmp_path / "bank"
    kw = dict(scale=4, degrade_cfg=cfg, multiscale=(1.0,), tile=64, peer_name="nearest")
    with pytest.raises(KeyboardInterrupt):
        build_bank(photo_dir, bank, peer=dying_peer, **kw)
    assert len(list(bank.glob("p0/*.peer.png"))) == 2
    assert json.loads((bank / MANIFEST).read_text())["passes"] == 0  # a pass is counted once complete
    assert not list(bank.rglob(".*.tmp"))  # nothing half written
    n_tiles = len(list((bank / "hr").glob("*.png")))
    assert n_tiles > 2
    assert build_bank(photo_dir, bank, peer=nearest_peer, **kw) == n_tiles - 2  # only what was missing
    first = {p.name: p.read_bytes() for p in bank.glob("p0/*.lr.png")}
    # a second pass: other degradations of the same tiles; the first pass untouched
    assert build_bank(photo_dir, bank, peer=nearest_peer, passes=2, **kw) == n_tiles
    assert {p.name: p.read_bytes() for p in bank.glob("p0/*.lr.png")} == first
    assert any(first[p.name] != p.read_bytes() for p in bank.glob("p1/*.lr.png"))
    assert json.loads((bank / MANIFEST).read_text())["passes"] == 2
    # the same folder with other settings is refused, not mixed
    with pytest.raises(ValueError, match="other settings"):
        build_bank(photo_dir, bank, peer=nearest_peer, **{**kw, "degrade_cfg": DegradeConfig()})
    with pytest.raises(ValueError, match="the peer gave"):
        build_bank(photo_dir, tmp_path / "b2", peer=lambda img: img, **kw)


def test_crops_are_aligned_across_hr_lr_and_peer(photo_dir, tmp_path):
    bank = tmp_path / "bank"
    build_bank(photo_dir, bank, scale=4, degrade_cfg=DegradeConfig(), peer=nearest_peer, tile=64, passes=2)
    data = PeerBankCrops(bank, crop=32, scale=4, batch_size=6, seed=1)
    hr, lr, peer = data[3]
    assert hr.shape == peer.shape == (6, 3, 32, 32) and lr.shape == (6, 3, 8, 8)
    # the peer is nearest x4 of the LR, so any misaligned crop, flip or rotation shows
    assert torch.equal(peer, lr.repeat_interleave(4, -1).repeat_interleave(4, -2))
    # and the LR is a degradation of that HR crop, not of another one
    down = torch.nn.functional.avg_pool2d(hr, 4)
    assert (lr - down).abs().mean() < (lr - down.roll(1, 0)).abs().mean()
    again = PeerBankCrops(bank, crop=32, scale=4, batch_size=6, seed=1)[3]
    assert all(torch.equal(a, b) for a, b in zip(again, (hr, lr, peer), strict=True))  # a pure function of step
    with pytest.raises(FileNotFoundError, match="snapsr train bank"):
        PeerBankCrops(tmp_path / "empty", crop=32, scale=4, batch_size=2)
    with pytest.raises(ValueError, match="x2"):
        PeerBankCrops(bank, crop=32, scale=2, batch_size=2)


def test_gtasr_learns_the_peer_at_the_realistic_end_and_the_ground_truth_at_the_faithful(photo_dir, tmp_path):
    model = perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 4)
    cfg = GTASRConfig(w_consistency=0.0, w_ta=0.0, anchor_from=0.0, w_lowpass=0.0)
    hr = torch.rand(2, 3, 16, 16)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    peer = torch.rand(2, 3, 16, 16)
    cond = model.condition(lr)
    x_0 = model.start(cond, torch.randn(hr.shape, generator=torch.Generator().manual_seed(0)))

    def value(t: float, peer):
        dial = lambda lr, hr, g: (torch.full((2,), t), None)  # noqa: E731
        loss = GTASRLoss(model, model, cfg, 10, dial, lambda *a: torch.zeros(()))
        return loss(lr, hr, torch.Generator().manual_seed(0), peer=peer)

    for t in (0.0, 1.0):
        out = model.one_step(x_0, torch.full((2,), t), cond).float()
        to_hr, to_peer = charbonnier(out, hr, cfg.charbonnier_eps), charbonnier(out, peer, cfg.charbonnier_eps)
        assert torch.allclose(value(t, peer), to_peer if t == 1 else to_hr, atol=1e-6)
    assert torch.allclose(value(0.0, peer), value(0.0, None))  # realism 0 never sees the peer
    t = torch.full((2,), 0.25)
    out = model.one_step(x_0, t, cond).float()
    blend = dial_pixel_loss(out, hr, t, weight=torch.full((2,), 0.75)) + 0.25 * charbonnier(out, peer, 1e-3)
    assert torch.allclose(value(0.25, peer), blend, atol=1e-6)


def test_a_run_on_a_peer_bank_trains_and_says_so_in_its_card(photo_dir, tmp_path):
    bank = tmp_path / "bank"
    build_bank(photo_dir, bank, scale=4, degrade_cfg=DegradeConfig(), peer=nearest_peer, tile=64, peer_name="nearest")
    fcfg = FlowConfig(scale=4, backbone="lrnet_t")
    base = weights.save(tmp_path / "t.safetensors", perturbed(fcfg, 2), weights.flow_card(fcfg, kind="teacher"))
    data = dataclasses.replace(tiny_data(photo_dir), peer_bank=str(bank))
    run_cfg = GTASRRunConfig(
        init=str(base), gtasr=GTASRConfig(w_consistency=0.0, w_ta=0.0), data=data,
        train=tiny_train(tmp_path / "run", steps=2),
    )  # fmt: skip
    res = train_gtasr(run_cfg, progress=False)
    assert res.step == 2 and all(np.isfinite(v) for v in res.losses.values())
    card = weights.read_card(tmp_path / "run" / "ema.safetensors")
    n = len(list(bank.glob("p0/*.peer.png")))
    assert card["peer_bank"] == {"path": str(bank), "peer": "nearest", "passes": 1, "pairs": n}
    with pytest.raises(ValueError, match="two anchor targets"):
        train_gtasr(dataclasses.replace(run_cfg, gtasr=GTASRConfig(anchor=str(base))), progress=False)
    with pytest.raises(ValueError, match="gtasr recipe"):
        recipes.get("rcod").train(
            RCODRunConfig(init=str(base), data=data, train=tiny_train(tmp_path / "rcod", steps=1)), progress=False
        )


def test_bank_command_needs_a_bank_folder_and_a_known_peer(photo_dir, tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text(f'recipe = "gtasr"\n[data]\ntrain_dir = "{photo_dir}"\n')
    r = CliRunner().invoke(main, ["train", "bank", "--config", str(conf)])
    assert r.exit_code == 2 and "data.peer_bank" in r.output
    r = CliRunner().invoke(main, ["train", "bank", "--config", str(conf), "--peer", "nope", "data.peer_bank=x"])
    assert r.exit_code == 2 and "unknown peer" in r.output
