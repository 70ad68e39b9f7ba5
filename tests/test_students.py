import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from snapsr.degrade import DegradeConfig, degrade
from snapsr.infer.upscaler import Upscaler
from snapsr.model import weights
from snapsr.model.backbones import create
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR
from snapsr.train import checkpoint, rcod
from snapsr.train.config import DataConfig, TrainConfig
from snapsr.train.gtasr import GTASRConfig, GTASRLoss, GTASRRunConfig, grid_time, time_grid_size, train_gtasr
from snapsr.train.losses.perception import PerceptionConfig
from snapsr.train.losses.pixel import charbonnier, dial_pixel_loss
from snapsr.train.oftsr import DistillRunConfig, train_distill
from snapsr.train.rcod import RCODConfig
from snapsr.train.sharpen import usm_sharpen
from snapsr.train.student import DialTime, make_student
from tests.conftest import perturbed, tiny_clip


def tiny_train(out, steps=4, **kw) -> TrainConfig:
    return TrainConfig(
        out_dir=str(out), steps=steps, batch_size=2, lr=1e-3, warmup=1, precision="fp32",
        ckpt_every=2, val_every=steps, val_steps=(1,), **kw,
    )  # fmt: skip


def tiny_data(photo_dir) -> DataConfig:
    return DataConfig(train_dir=str(photo_dir), val_dir=str(photo_dir), crop=32, val_crop=32, val_images=1)


# -- RCOD --------------------------------------------------------------------------


def test_groups_follow_similarity_and_times_stay_in_their_slice():
    sim = torch.tensor([40.0, 30.0, 25.0, 20.0, 35.0])
    g = rcod.group_of(sim, [33.0, 28.0, 22.0])  # 4 groups, boundaries descending
    assert g.tolist() == [0, 1, 2, 3, 0]
    t = rcod.group_time(g, 4, 0.0, 1.0, torch.Generator().manual_seed(0))
    assert ((t >= g / 4) & (t <= (g + 1) / 4)).all()
    assert rcod.group_time(g, 4, 0.0, 1.0, None, jitter=False).tolist() == [0.125, 0.375, 0.625, 0.875, 0.125]
    hr = torch.rand(3, 3, 16, 16)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    noisy = lr + 0.2 * torch.randn_like(lr)
    assert (rcod.similarity(noisy, hr, 4) < rcod.similarity(lr, hr, 4)).all()


def test_relative_similarity_groups_by_degradation_not_content():
    from snapsr.degrade import bicubic_down

    g = torch.Generator().manual_seed(0)
    flat = 0.5 + 0.02 * torch.rand(1, 3, 32, 32, generator=g)  # a sky: high PSNR whatever happens to it
    busy = torch.rand(1, 3, 32, 32, generator=g)  # grass: low PSNR even when clean
    hr = torch.cat([flat, busy])
    clean = bicubic_down(hr, 4)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    # absolute PSNR ranks the noisy sky above the clean grass: content, not degradation
    assert rcod.similarity(noisy, hr, 4)[0] > rcod.similarity(clean, hr, 4)[1]
    rel_clean, rel_noisy = rcod.similarity(clean, hr, 4, relative=True), rcod.similarity(noisy, hr, 4, relative=True)
    assert rel_clean.tolist() == [rcod.RELATIVE_CAP] * 2  # a clean pair: its LR is the clean downscale
    assert (rel_noisy - 26.0).abs().max() < 1.0  # the same noise scores the same on sky and on grass
    with pytest.raises(ValueError, match="rcod.space"):
        RCODConfig(space="absolute")


def test_energy_input_shows_noise_and_blur_whatever_the_content():
    from snapsr.degrade import bicubic_down
    from snapsr.model.backbones.prompt import local_energy

    g = torch.Generator().manual_seed(1)
    hr = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 256, 256, generator=g), 17, 1, 8)  # detail at the LR scale
    hr[1] = 0.5 + 0.1 * (hr[1] - 0.5)  # the same texture at a tenth of the contrast
    clean = bicubic_down(hr, 4)
    noisy = clean + 0.02 * torch.randn(clean.shape, generator=g)
    blurred = torch.nn.functional.avg_pool2d(clean, 3, 1, 1)
    ratio = lambda x: local_energy(x)[:, :3].mean((1, 2, 3))  # noqa: E731 - finest band against the next
    assert (ratio(noisy) > ratio(clean) + 0.05).all() and (ratio(blurred) < ratio(clean) - 0.05).all()
    model = FlowSR(FlowConfig(scale=4, backbone="lrnet_t", estimator=True, encoder_input="energy"))
    level = model.realism_map(model.condition(noisy))
    assert level.shape == (2, 1, 256, 256) and 0 <= level.min() and level.max() <= 1
    with pytest.raises(ValueError, match="encoder_input"):
        FlowConfig(encoder_input="pixels")


def _train_estimator(cfg, base):
    """Run the estimator recipe: its EMA weights file and the names of ``base``'s tensors it changed."""
    from snapsr.train import recipes

    recipes.get("estimator").train(cfg)
    out = Path(cfg.train.out_dir) / "ema.safetensors"
    after = weights.load_flow(out)[0].state_dict()
    return out, {k for k, v in base.state_dict().items() if not torch.equal(v, after[k])}


def test_estimator_recipe_moves_only_the_estimator(tmp_path, photo_dir):
    from snapsr.train import recipes

    init = tmp_path / "student.safetensors"
    base = make_student(perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 5), RCODConfig(estimator=True))
    weights.save(init, base, weights.flow_card(base.cfg, kind="student", default_steps=1))
    cfg = rcod.EstimatorRunConfig(
        init=str(init), data=tiny_data(photo_dir), train=tiny_train(tmp_path / "run", steps=3),
        rcod=RCODConfig(groups=2, estimator=True, space="relative", calib_batches=2), auto_range=(0.0, 0.5),
    )  # fmt: skip
    out, moved = _train_estimator(cfg, base)
    assert moved and all(k.startswith("encoder.") for k in moved)
    card = weights.read_card(out)
    assert card["init"] == str(init) and card["rcod"]["space"] == "relative" and card["steps_trained"] == 3
    assert card["flow"]["encoder_input"] == "energy" and card["rcod"]["auto_range"] == [0.0, 0.5]
    with pytest.raises(ValueError, match="auto_range"):
        dataclasses.replace(cfg, auto_range=(0.6, 0.5))
    with pytest.raises(ValueError, match="set init"):
        recipes.get("estimator").train(dataclasses.replace(cfg, init=""))


def test_estimator_targets_at_the_ends_of_auto_range():
    """Targets "ends": puts the least degraded group's target at lo (a clean photo gets the faithful end) and
    the most degraded one's at hi; "centres" keeps the slices' centres."""
    for groups, (lo, hi) in ((4, (0.0, 0.85)), (3, (0.1, 0.5)), (2, (0.0, 1.0))):
        span = rcod.target_span((lo, hi), groups, "ends")
        centres = rcod.group_time(torch.arange(groups), groups, *span, None, jitter=False)
        assert torch.allclose(centres, torch.linspace(lo, hi, groups), atol=1e-6)
    assert rcod.target_span((0.0, 0.5), 4, "centres") == (0.0, 0.5)
    with pytest.raises(ValueError, match="targets"):
        rcod.EstimatorRunConfig(targets="middle")


class _GrainStudent:
    """A stand-in with FlowSR's start and one_step: its output is ``cond`` plus a checkerboard of
    amplitude ``t`` (dial 1: RMS 1 in every Haar detail band at the finest level)."""

    class cfg:
        scale = 4

    def start(self, cond, eps):
        return cond

    def one_step(self, x_0, t, cond):
        i, j = torch.meshgrid(torch.arange(cond.shape[-2]), torch.arange(cond.shape[-1]), indexing="ij")
        return cond + 0.2 * t * ((i + j) % 2 * 2 - 1).to(cond)


def test_matched_dial_finds_the_dial_whose_detail_matches_the_ground_truth():
    """Targets "matched": per estimator cell, the dial at which the student's output is as detailed as
    the ground truth there: the faithful end where the ground truth is flat, the top where it is
    more detailed than the output ever gets, the crossing (to within the grid's linear step) between."""
    st, H = _GrainStudent(), 64
    cond = torch.full((1, 3, H, 3 * 16), 0.5)
    hr = cond.clone()
    i, j = torch.meshgrid(torch.arange(H), torch.arange(16), indexing="ij")
    checker = ((i + j) % 2 * 2 - 1).float()
    hr[..., :, 16:32] += 0.2 * 0.5 * checker  # the output's detail at dial 0.5
    hr[..., :, 32:48] += 0.2 * 2.0 * checker  # more than the output has even at dial 1
    dials = [0.0, 0.25, 0.5, 0.75, 1.0]
    t = rcod.matched_dial(st, cond, torch.zeros_like(cond), hr, dials)
    assert t.shape == (1, 1, H // 16, 3)
    assert torch.all(t[..., 0] == 0.0) and torch.all(t[..., 2] == 1.0)
    assert torch.allclose(t[..., 1], torch.full_like(t[..., 1], 0.5), atol=1e-4)
    # off the grid: the match at 0.6 falls between 0.5 and 0.75, found to within that step
    hr[..., :, 16:32] = 0.5 + 0.2 * 0.6 * checker
    t = rcod.matched_dial(st, cond, torch.zeros_like(cond), hr, dials)
    assert torch.all((t[..., 1] > 0.5) & (t[..., 1] < 0.75))


def _prompt_student_file(tmp_path):
    """A tiny student with RCOD's prompt and estimator saved as weights: ``(path, model)``."""
    init = tmp_path / "student.safetensors"
    base = make_student(
        perturbed(FlowConfig(scale=4, backbone="lrnet_t", encoder_input="energy"), 5),
        RCODConfig(prompt=True, estimator=True),
    )
    weights.save(init, base, weights.flow_card(base.cfg, kind="student", default_steps=1))
    return init, base


def test_estimator_recipe_with_matched_targets(tmp_path, photo_dir):
    """The matched targets train the level head alone on a prompt model, and the card says how."""
    from snapsr.train import recipes

    init, base = _prompt_student_file(tmp_path)
    cfg = rcod.EstimatorRunConfig(
        init=str(init), data=tiny_data(photo_dir), train=tiny_train(tmp_path / "run", steps=2),
        rcod=RCODConfig(groups=2, estimator=True, space="relative"), auto_range=(0.0, 0.8),
        targets="matched", matched_dials=3,
    )  # fmt: skip
    out, moved = _train_estimator(cfg, base)
    assert moved and all(k.startswith("encoder.level.") for k in moved)
    card = weights.read_card(out)["rcod"]
    assert card["auto_targets"] == "matched" and card["matched_dials"] == 3 and card["boundaries_psnr"] == []
    # a level head of 3x3 convolutions, new on this model: the rest of the network and encoder kept
    recipes.get("estimator").train(
        dataclasses.replace(cfg, estimator_head=2, train=tiny_train(tmp_path / "r2", steps=2))
    )
    grown = weights.load_flow(tmp_path / "r2" / "ema.safetensors")[0]
    assert grown.cfg.estimator_head == 2 and isinstance(grown.encoder.level, torch.nn.Sequential)
    after = grown.state_dict()
    kept = [k for k in base.state_dict() if not k.startswith("encoder.level.")]
    assert all(torch.equal(base.state_dict()[k], after[k]) for k in kept)
    assert {k for k in after if k.startswith("encoder.level.")} == {
        f"encoder.level.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")
    }
    lr = torch.rand(1, 3, 24, 32)
    level = grown.realism_map(grown.condition(lr))
    assert level.shape == (1, 1, 96, 128) and 0 <= level.min() and level.max() <= 1
    with pytest.raises(ValueError, match="matched_dials"):
        dataclasses.replace(cfg, matched_dials=1)


def test_noise_free_twin_and_signal_fraction():
    """``without_noise`` makes a pair's twin from the same draws (same blur, resizes, JPEG); the
    signal fraction is 1 without noise, near 0 where noise covers a flat photo, near 1 where detail
    outweighs it."""
    g = torch.Generator().manual_seed(0)
    flat = torch.full((4, 3, 64, 64), 0.5)
    detail = (0.5 + 0.3 * torch.sign(torch.randn(4, 3, 64, 64, generator=g))).clamp(0, 1)
    hr = torch.cat([flat, detail])
    cfg = DegradeConfig(
        clean_share=0.25, blur=False, resize=False, jpeg=False, second_order=False,
        noise_range=(20.0, 30.0), poisson_scale_range=(2.0, 3.0),
    )  # fmt: skip
    lr = degrade(hr, 4, cfg, torch.Generator().manual_seed(3))
    twin = degrade(hr, 4, cfg.without_noise(), torch.Generator().manual_seed(3))
    noise = (lr - twin).square().mean((1, 2, 3))
    assert torch.all(noise[:2] == 0) and torch.all(noise[2:] > 0)  # the clean share has no noise
    f = rcod.signal_fraction(lr, twin, hr, 4)
    assert f.shape == (8, 1, 4, 4)
    assert torch.all(f[:2] == 1)  # no noise: the group's target stands
    assert f[2:4].max() < 0.2  # heavy noise on a flat photo: nothing to restore
    assert f[4:].min() > 0.9  # sharp detail far above the noise
    # a model without noise: twin and pair the same, the fraction the detail alone
    quiet = dataclasses.replace(cfg, noise_range=(0.0, 0.0), poisson_scale_range=(0.0, 0.0))
    a, b = (degrade(hr, 4, c, torch.Generator().manual_seed(5)) for c in (quiet, quiet.without_noise()))
    assert torch.equal(a, b)


def test_estimator_recipe_with_noise_weighted_targets(tmp_path, photo_dir):
    """noise_weight retrains the level head alone on pairs made again with their twins; the card says so."""
    init, base = _prompt_student_file(tmp_path)
    cfg = rcod.EstimatorRunConfig(
        init=str(init), data=tiny_data(photo_dir), train=tiny_train(tmp_path / "run", steps=2),
        rcod=RCODConfig(groups=2, estimator=True, space="relative", calib_batches=2), auto_range=(0.0, 0.8),
        targets="ends", noise_weight=1.0,
    )  # fmt: skip
    out, moved = _train_estimator(cfg, base)
    assert moved and all(k.startswith("encoder.level.") for k in moved)
    card = weights.read_card(out)["rcod"]
    assert card["auto_targets"] == "ends" and card["noise_weight"] == 1.0
    with pytest.raises(ValueError, match="noise_weight"):
        dataclasses.replace(cfg, targets="matched")
    with pytest.raises(ValueError, match="noise_weight"):
        dataclasses.replace(cfg, noise_weight=-1.0)


def test_estimator_recipe_on_a_prompt_model_moves_only_the_level_head(tmp_path, photo_dir):
    """The prompt tokens read the estimator's encoder: retraining the estimator keeps them (and every
    output at a fixed dial value), moving only the level head."""
    from snapsr.train import recipes

    init, base = _prompt_student_file(tmp_path)
    cfg = rcod.EstimatorRunConfig(
        init=str(init), data=tiny_data(photo_dir), train=tiny_train(tmp_path / "run", steps=3),
        rcod=RCODConfig(groups=2, estimator=True, space="relative", calib_batches=2), auto_range=(0.0, 0.5),
    )  # fmt: skip
    _, moved = _train_estimator(cfg, base)
    assert moved and all(k.startswith("encoder.level.") for k in moved)
    with pytest.raises(ValueError, match="level head"):
        recipes.get("estimator").train(dataclasses.replace(cfg, encoder_input="image"))


def test_calibration_splits_the_runs_data_into_equal_groups(photo_dir):
    cfg = GTASRRunConfig(data=tiny_data(photo_dir), train=tiny_train("unused"))
    b = rcod.calibrate(cfg, 4, groups=3, batches=4)
    assert len(b) == 2 and b[0] > b[1]
    assert b == rcod.calibrate(cfg, 4, groups=3, batches=4)  # deterministic: resumes agree


def test_prompt_backbone_forward_backward_and_guards():
    net = create("lrnet_t", scale=4, prompt_dim=8)
    x, cond = torch.rand(2, 3, 20, 28), torch.rand(2, 3, 20, 28)
    tokens = torch.randn(2, 4, 8, requires_grad=True)
    for t in (torch.rand(2, 1, 1, 1), torch.rand(2, 1, 20, 28)):  # the contract's forms of t
        v = net(x, t, cond, prompt=tokens)
        assert v.shape == x.shape
        v.square().mean().backward()
    half = torch.full((2, 1, 1, 1), 0.5)
    with pytest.raises(ValueError, match="needs prompt"):
        net(x, half, cond)
    with pytest.raises(ValueError, match="takes no prompt"):
        create("lrnet_t", scale=4)(x, half, cond, prompt=tokens)


def test_student_with_rcod_encoder_starts_as_its_teacher_and_estimates_in_range():
    teacher = perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 3).eval()
    student = make_student(teacher, RCODConfig(prompt=True, estimator=True)).eval()
    lr = torch.rand(2, 3, 12, 10)
    cond = teacher.condition(lr)
    x = torch.rand_like(cond)
    assert torch.allclose(student.velocity(x, 0.3, cond), teacher.velocity(x, 0.3, cond), atol=1e-6)
    level = student.realism_map(cond)
    assert level.shape == (2, 1, 48, 40) and level.min() >= 0 and level.max() <= 1
    with pytest.raises(ValueError, match="no realism estimator"):
        teacher.realism_map(cond)
    other = FlowSR(FlowConfig(scale=4, backbone="lrnet_s"))
    with pytest.raises(RuntimeError):
        make_student(other, RCODConfig()).load_state_dict(teacher.state_dict())


def test_auto_reads_the_encoder_once_per_tile_and_never_a_stale_result():
    """Under ``auto`` a tile's dial map and prompt share one encoder pass (inference only); another
    tensor, an in-place change, new weights, autocast, a copy of the model or autograd all re-read it."""
    model = make_student(perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 7), RCODConfig(prompt=True, estimator=True))
    model.eval()
    calls = []
    model.encoder.register_forward_hook(lambda *a: calls.append(1))
    cond = model.condition(torch.rand(1, 3, 12, 12))
    with torch.no_grad():
        t = model.realism_map(cond)
        out = model.one_step(torch.rand_like(cond), t, cond)
        assert len(calls) == 1 and torch.isfinite(out).all()
        first = model.encode(cond)
        assert model.encode(cond.clone()) is not first and len(calls) == 2
        cond2 = cond.clone()
        kept = model.encode(cond2)
        cond2.add_(0.1)
        assert model.encode(cond2) is not kept
        kept = model.encode(cond2)
        next(model.encoder.parameters()).mul_(1.01)
        again = model.encode(cond2)
        assert again is not kept and not torch.equal(again[0], kept[0])
        model.encoder.level.bias.add_(0.5)  # the estimator recipe moves only the level head
        level = model.encode(cond2)
        assert level is not again and not torch.equal(level[1], again[1])
        again = level
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert model.encode(cond2) is not again
        assert copy.deepcopy(model)._encoded_memo is None
    with torch.enable_grad():
        n = len(calls)
        model.encode(cond2), model.encode(cond2)
        assert len(calls) == n + 2


def test_estimator_smooth_spreads_a_lone_cell_and_keeps_a_flat_map():
    """``estimator_smooth``: one cell the estimator reads as degraded (a thin noisy-looking band on a
    clean photo) no longer gets its own dial; a flat map, and the map's range, stay as they were."""
    cfg = perturbed(FlowConfig(scale=4, backbone="lrnet_t", estimator=True, encoder_input="energy"), 3)
    model = make_student(cfg, RCODConfig(estimator=True)).eval()
    cond = model.condition(torch.rand(1, 3, 64, 64))
    level = torch.full((1, 1, 16, 16), 0.1)
    level[..., 8, 8] = 0.9
    for value in (level, torch.full_like(level, 0.4)):
        model.encode = lambda c, v=value: (None, v)
        sharp = model.realism_map(cond)
        model.cfg = dataclasses.replace(model.cfg, estimator_smooth=5)
        smooth = model.realism_map(cond)
        model.cfg = dataclasses.replace(model.cfg, estimator_smooth=0)
        assert smooth.shape == sharp.shape == (1, 1, 256, 256)
        assert abs(smooth.mean() - sharp.mean()) < 0.01 and 0.1 - 1e-6 <= smooth.min() and smooth.max() <= 0.9
        if value is level:
            assert sharp.max() > 0.85 and smooth.max() < 0.25  # the lone cell spread over its neighbours
        else:
            assert torch.allclose(smooth, sharp)
    with pytest.raises(ValueError, match="estimator_smooth"):
        FlowConfig(estimator_smooth=-1)


def test_grown_student_starts_as_its_init_and_trains_the_new_part():
    base = perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 6).eval()
    student = make_student(base, RCODConfig(), grow={"context": 2})
    assert student.cfg.backbone_args == {"context": 2} and student.backbone.size_multiple == 16
    lr = torch.rand(1, 3, 12, 8)  # a multiple of both size multiples: padding would differ at the edges
    cond = base.condition(lr)
    x = torch.rand_like(cond)
    assert torch.allclose(student.velocity(x, 0.4, cond), base.velocity(x, 0.4, cond), atol=1e-6)
    student.velocity(x, 0.4, cond).square().mean().backward()
    assert student.backbone.context.out.weight.grad.abs().sum() > 0  # the zero-initialised part learns
    from snapsr.train.student import setup_student

    cfg = GTASRRunConfig(grow={"context": 2}, data=DataConfig(train_dir="unused"), train=tiny_train("unused"))
    su = setup_student(cfg, base, torch.device("cpu"), 0.0, 1.0)
    assert su.fresh and all(n.startswith("backbone.context.") for n in su.fresh)  # trained at fresh_lr_mult
    with torch.no_grad():  # once trained, one more (random) convolution in the branch changes the output
        student.backbone.context.out.weight.fill_(0.1)
    with pytest.raises(ValueError, match="changes what the weights compute"):
        make_student(student, RCODConfig(), grow={"context": 3})


def test_energy_cues_grow_as_the_identity_then_see_noise_where_it_is():
    """``energy``: the LR's local band energies into the trunk. Grown onto trained weights it starts as
    them and its new convolution learns; once that is non-zero the output changes, and the training
    and inference paths (per-pixel dial, bf16) still agree."""
    base = perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 8).eval()
    student = make_student(base, RCODConfig(), grow={"energy": True}).eval()
    lr = torch.rand(1, 3, 8, 12)
    cond = base.condition(lr)
    x = torch.rand_like(cond)
    assert torch.allclose(student.velocity(x, 0.3, cond), base.velocity(x, 0.3, cond), atol=1e-6)
    student.velocity(x, 0.3, cond).square().mean().backward()
    assert student.backbone.energy.weight.grad.abs().sum() > 0
    with torch.no_grad():
        torch.nn.init.normal_(student.backbone.energy.weight, std=0.3)
        trained = student.velocity(x, 0.3, cond)
        t_map = torch.full((1, 1, 32, 48), 0.3)
        assert torch.allclose(student.velocity(x, t_map, cond), trained, atol=1e-4)  # the per-pixel path
        assert not torch.allclose(trained, base.velocity(x, 0.3, cond), atol=1e-3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert (student.velocity(x, 0.3, cond).float() - trained).abs().max() < 0.1


def test_dial_time_uniform_or_by_group():
    hr = torch.rand(4, 3, 16, 16)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    g = torch.Generator().manual_seed(0)
    t, centre = DialTime(RCODConfig(), [], 0.1, 0.9, 4)(lr, hr, g)
    assert centre is None and ((t >= 0.1) & (t <= 0.9)).all()
    lr[2:] += 0.3 * torch.randn_like(lr[2:])  # two images far more degraded
    sim = rcod.similarity(lr, hr, 4)
    mid = float((sim[:2].min() + sim[2:].max()) / 2)
    assert sim[:2].min() > sim[2:].max()
    t, centre = DialTime(RCODConfig(groups=2, jitter=False), [mid], 0.0, 1.0, 4)(lr, hr, g)
    assert centre.tolist() == [0.25, 0.25, 0.75, 0.75] and torch.equal(t, centre)
    # dial "uniform": the groups still set the estimator's targets, but any sample trains any dial value
    ts = torch.cat(
        [DialTime(RCODConfig(groups=2, dial="uniform"), [mid], 0.0, 1.0, 4)(lr, hr, g)[0] for _ in range(50)]
    )
    _, centre = DialTime(RCODConfig(groups=2, dial="uniform"), [mid], 0.0, 1.0, 4)(lr, hr, g)
    assert centre.tolist() == [0.25, 0.25, 0.75, 0.75]
    assert ts.view(50, 4)[:, :2].max() > 0.5 and ts.view(50, 4)[:, 2:].min() < 0.5
    with pytest.raises(ValueError, match="rcod.dial"):
        RCODConfig(dial="groups")


def test_faithful_share_trains_that_share_at_the_faithful_end_and_keeps_the_rest_of_the_dial():
    hr = torch.rand(4, 3, 16, 16)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    g = torch.Generator().manual_seed(0)
    ts = torch.cat([DialTime(RCODConfig(faithful_share=0.5), [], 0.1, 0.9, 4)(lr, hr, g)[0] for _ in range(200)])
    at_lo = ts == 0.1
    assert 0.4 < at_lo.float().mean() < 0.6  # about half, drawn per sample
    rest = ts[~at_lo]
    assert rest.min() > 0.1 and rest.max() <= 0.9 and rest.std() > 0.15  # the others still span the dial
    # grouped: the estimator's targets are the groups' whatever the dial time
    t, centre = DialTime(RCODConfig(groups=2, dial="uniform", faithful_share=1.0), [0.0], 0.0, 1.0, 4)(lr, hr, g)
    assert (t == 0).all() and centre is not None
    with pytest.raises(ValueError, match="faithful_share"):
        RCODConfig(faithful_share=1.5)


# -- GTASR -----------------------------------------------------------------------------


def test_gtasr_time_grid_and_consistency_function():
    cfg = GTASRConfig(n_start=10, n_end=80)
    sizes = [time_grid_size(cfg, k, 100) for k in range(0, 100, 5)]
    assert sizes[0] == 10 and sizes[-1] == 80 and sizes == sorted(sizes)
    ts = grid_time(torch.arange(0, 11), 10, 2.0)
    assert ts[0] == 0 and ts[-1] == 1 and (ts.diff() > 0).all() and ts.diff()[-1] < ts.diff()[0]
    model = perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 4)
    loss = GTASRLoss(model, model, cfg, 10, None, None)
    x, cond = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.equal(loss.f(x, torch.ones(1), cond), x)  # f is the identity at the data end
    assert torch.allclose(loss.f(x, torch.zeros(1), cond), x + model.velocity(x, 0.0, cond))


def test_gtasr_smoke_resume_with_stage2_reference(photo_dir, tmp_path):
    cfg = GTASRRunConfig(
        flow=FlowConfig(scale=4, backbone="lrnet_t"),
        gtasr=GTASRConfig(n_start=2, n_end=8, stage2_start=1, refresh_every=2),
        data=tiny_data(photo_dir),
        train=tiny_train(tmp_path / "g", steps=5),
    )
    full = train_gtasr(
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out_dir=str(tmp_path / "f"))), progress=False
    )
    assert all(torch.isfinite(torch.tensor(v)) for v in full.losses.values())
    train_gtasr(cfg, progress=False, stop_at=2)
    state = checkpoint.load(tmp_path / "g" / "checkpoint.pt")
    assert "reference" in state["state"]
    rest = train_gtasr(cfg, resume=True, progress=False)
    assert rest.losses[5] == full.losses[5]
    card = weights.read_card(tmp_path / "g" / "ema.safetensors")
    assert card["kind"] == "student" and card["recipe"].startswith("GTASR")


def test_gtasr_supervised_dial_is_one_pass_per_sample(monkeypatch):
    model = perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 4)
    cfg = GTASRConfig(w_consistency=0.0, w_ta=0.0)
    dial = DialTime(RCODConfig(), [], 0.0, 1.0, 4)
    loss = GTASRLoss(model, model, cfg, 10, dial, lambda *a: torch.zeros(()))
    calls = []
    forward = model.velocity
    monkeypatch.setattr(model, "velocity", lambda x, t, c, **kw: calls.append(x.shape[0]) or forward(x, t, c, **kw))
    hr = torch.rand(2, 3, 16, 16)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    value = loss(lr, hr, torch.Generator().manual_seed(0))
    assert calls == [2]  # one pass over the batch, no consistency or alignment passes
    # it is the Charbonnier distance of the one-step output at the drawn dial value
    g = torch.Generator().manual_seed(0)
    x_0 = model.start(model.condition(lr), torch.randn(hr.shape, generator=g))
    t, _ = dial(lr, hr, g)
    out = x_0 + forward(x_0, t, model.condition(lr))
    assert torch.allclose(value, charbonnier(out, hr, cfg.charbonnier_eps))
    # loosened towards realism 1, with the low-pass term: the dial pixel loss at each image's t
    cfg2 = GTASRConfig(w_consistency=0.0, w_ta=0.0, pixel_at_1=0.25, w_lowpass=2.0, lowpass=2)
    value2 = GTASRLoss(model, model, cfg2, 10, dial, lambda *a: torch.zeros(()))(
        lr, hr, torch.Generator().manual_seed(0)
    )
    want = dial_pixel_loss(out, hr, t, at_1=0.25, w_lowpass=2.0, lowpass=2, eps=cfg2.charbonnier_eps)
    assert torch.allclose(value2, want) and not torch.allclose(value2, value)
    with pytest.raises(ValueError, match="pixel_at_1"):
        GTASRConfig(pixel_at_1=1.5)
    # with a USM target, each image's target is the ground truth sharpened by target_usm * its t
    cfg3 = GTASRConfig(w_consistency=0.0, w_ta=0.0, target_usm=0.5, usm_sigma=2.0)
    value3 = GTASRLoss(model, model, cfg3, 10, dial, lambda *a: torch.zeros(()))(
        lr, hr, torch.Generator().manual_seed(0)
    )
    assert torch.allclose(value3, charbonnier(out, usm_sharpen(hr, 0.5 * t, 2.0), cfg.charbonnier_eps))
    assert not torch.allclose(value3, value)
    with pytest.raises(ValueError, match="target_usm"):
        GTASRConfig(target_usm=-0.1)


def test_gtasr_anchor_takes_the_realistic_end_from_frozen_weights(photo_dir, tmp_path):
    model = perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 4)
    other = perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 5)
    cfg = GTASRConfig(w_consistency=0.0, w_ta=0.0, anchor="x", anchor_from=0.5, w_lowpass=1.0, lowpass=2)
    hr = torch.rand(2, 3, 16, 16)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    cond = model.condition(lr)
    eps = torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))
    x_0 = model.start(cond, eps)

    def value(t: float, anchor, cfg=cfg):
        dial = lambda lr, hr, g: (torch.full((2,), t), None)  # noqa: E731
        return GTASRLoss(model, model, cfg, 10, dial, lambda *a: torch.zeros(()), anchor)(
            lr, hr, torch.Generator().manual_seed(0)
        )

    t1 = torch.ones(2)
    out = model.one_step(x_0, t1, cond).float()
    # at realism 1 the full-resolution pixel term is gone: only the low-pass one and the pull remain
    lowpass_only = dial_pixel_loss(out, hr, t1, w_lowpass=1.0, lowpass=2, weight=torch.zeros(2))
    assert torch.allclose(value(1.0, model), lowpass_only)  # anchored to itself: no pull
    pull = charbonnier(out, other.one_step(x_0, t1, cond).float(), cfg.charbonnier_eps)
    assert torch.allclose(value(1.0, other), lowpass_only + pull, atol=1e-6)
    # below anchor_from the anchor changes nothing
    assert torch.allclose(value(0.3, other), value(0.3, None))
    # the anchor at a lower temperature: its output from the same noise scaled, the student's not
    cold = dataclasses.replace(cfg, anchor_temperature=0.5)
    pull_cold = charbonnier(out, other.one_step(model.start(cond, 0.5 * eps), t1, cond).float(), cfg.charbonnier_eps)
    assert torch.allclose(value(1.0, other, cold), lowpass_only + pull_cold, atol=1e-6)
    assert not torch.allclose(pull_cold, pull)
    with pytest.raises(ValueError, match="anchor_from"):
        GTASRConfig(anchor_from=1.0)
    with pytest.raises(ValueError, match="anchor_temperature"):
        GTASRConfig(anchor_temperature=-1.0)
    # a run with an anchor file: trains, and the anchor is in neither the checkpoint nor the card's weights
    fcfg = FlowConfig(scale=4, backbone="lrnet_t")
    base = weights.save(tmp_path / "t.safetensors", perturbed(fcfg, 2), weights.flow_card(fcfg, kind="teacher"))
    run_cfg = GTASRRunConfig(
        init=str(base),
        gtasr=GTASRConfig(w_consistency=0.0, w_ta=0.0, anchor=str(base)),
        data=tiny_data(photo_dir),
        train=tiny_train(tmp_path / "run", steps=2),
    )
    train_gtasr(run_cfg, progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert not any("anchor" in k for k in state["state"]) and not any("anchor" in k for k in state["model"])
    # grown from that file: the context branch trains at fresh_lr_mult times the rest's learning rate
    grown = dataclasses.replace(
        run_cfg,
        grow={"context": 2},
        train=dataclasses.replace(tiny_train(tmp_path / "grown", steps=2), fresh_lr_mult=10.0),
    )
    train_gtasr(grown, progress=False)
    groups = torch.load(tmp_path / "grown" / "checkpoint.pt", weights_only=False)["optimizer"]["param_groups"]
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"])
    assert weights.read_card(tmp_path / "grown" / "ema.safetensors")["flow"]["backbone_args"] == {"context": 2}
    wrong = weights.save(
        tmp_path / "w.safetensors", perturbed(FlowConfig(scale=2, backbone="lrnet_t"), 2),
        weights.flow_card(FlowConfig(scale=2, backbone="lrnet_t"), kind="teacher"),
    )  # fmt: skip
    with pytest.raises(ValueError, match="must match"):
        train_gtasr(GTASRRunConfig(init=str(base), gtasr=GTASRConfig(anchor=str(wrong)), data=tiny_data(photo_dir),
                                   train=tiny_train(tmp_path / "r2", steps=1)), progress=False)  # fmt: skip


def test_kept_blocks_make_a_shallower_student_from_a_deeper_one():
    """``keep_blocks``: the student's trunk is base's blocks in that order, the rest of base's weights
    unchanged, so it computes what base would with only those blocks; wrong indices are one-line errors."""
    base = perturbed(FlowConfig(scale=4, backbone="lrnet_t", backbone_args={"blocks": 3}), 9).eval()
    student = make_student(base, RCODConfig(), keep_blocks=(0, 2)).eval()
    assert student.cfg.backbone_args == {"blocks": 2} and len(student.backbone.blocks) == 2
    for new, old in ((0, 0), (1, 2)):
        kept, was = student.backbone.blocks[new].state_dict(), base.backbone.blocks[old].state_dict()
        assert all(torch.equal(kept[k], was[k]) for k in was)
    lr = torch.rand(1, 3, 8, 12)
    cond = base.condition(lr)
    x = torch.rand_like(cond)
    cut = copy.deepcopy(base)
    cut.backbone.blocks = torch.nn.ModuleList([cut.backbone.blocks[0], cut.backbone.blocks[2]])
    with torch.no_grad():
        assert torch.allclose(student.velocity(x, 0.6, cond), cut.velocity(x, 0.6, cond), atol=1e-6)
        assert not torch.allclose(student.velocity(x, 0.6, cond), base.velocity(x, 0.6, cond), atol=1e-4)
        every = make_student(base, RCODConfig(), keep_blocks=(0, 1, 2)).eval()
        assert torch.allclose(every.velocity(x, 0.6, cond), base.velocity(x, 0.6, cond), atol=1e-6)
    for keep in ((2, 0), (0, 0), (0, 3), (-1, 1)):
        with pytest.raises(ValueError, match="keep_blocks must be increasing block indices in \\[0, 2\\]"):
            make_student(base, RCODConfig(), keep_blocks=keep)


def test_a_deeper_anchor_distils_a_kept_blocks_student_at_every_dial_value(photo_dir, tmp_path):
    """The fast tier's recipe: a student cut from its init by ``keep_blocks`` and pulled towards a deeper
    anchor with ``anchor_floor`` of the weight at realism 0, rising to 1 at realism 1."""
    model = perturbed(FlowConfig(scale=4, backbone="lrnet_t"), 4)
    cfg = GTASRConfig(w_consistency=0.0, w_ta=0.0, anchor="x", anchor_from=0.0, anchor_floor=0.5)
    loss = GTASRLoss(model, model, cfg, 10, None, None, model)
    w = loss.anchor_weight(torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(w, torch.tensor([0.5, 0.75, 1.0]))
    floor0 = GTASRLoss(model, model, dataclasses.replace(cfg, anchor_from=0.5, anchor_floor=0.0), 10, None, None, model)
    assert torch.allclose(floor0.anchor_weight(torch.tensor([0.25, 0.75])), torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="anchor_floor"):
        GTASRConfig(anchor_floor=1.5)
    deep_cfg = FlowConfig(scale=4, backbone="lrnet_t", backbone_args={"blocks": 3})
    deep_card = weights.flow_card(deep_cfg, kind="teacher")
    deep = weights.save(tmp_path / "deep.safetensors", perturbed(deep_cfg, 2), deep_card)
    run_cfg = GTASRRunConfig(
        init=str(deep),
        keep_blocks=(0, 2),
        gtasr=dataclasses.replace(cfg, anchor=str(deep)),
        data=tiny_data(photo_dir),
        train=tiny_train(tmp_path / "fast", steps=2),
    )
    train_gtasr(run_cfg, progress=False)
    card = weights.read_card(tmp_path / "fast" / "ema.safetensors")
    assert card["flow"]["backbone_args"] == {"blocks": 2} and card["keep_blocks"] == [0, 2]
    fast, _ = weights.load_flow(tmp_path / "fast" / "ema.safetensors")
    assert len(fast.backbone.blocks) == 2
    with pytest.raises(ValueError, match="keep_blocks cuts init's trunk"):
        train_gtasr(dataclasses.replace(run_cfg, init="", train=tiny_train(tmp_path / "r3", steps=1)), progress=False)


FLAGS = [
    dict(rcod=RCODConfig(groups=2, calib_batches=2)),
    dict(rcod=RCODConfig(groups=3, calib_batches=2, prompt=True, estimator=True)),
    dict(rcod=RCODConfig(prompt=True)),
    dict(perception=PerceptionConfig(w_hfp=0.5)),
    dict(perception=PerceptionConfig(w_adv=0.1, adv_start=1, adv_ramp=1, d_channels=8)),
    dict(perception=PerceptionConfig(w_adv=0.1, adv_start=1, adv_ramp=1, d_channels=8, d_arch="unet")),
    dict(
        rcod=RCODConfig(groups=2, calib_batches=2, estimator=True, dial="uniform"),
        degrade=DegradeConfig(clean_share=0.25, light_share=0.25),
    ),  # fmt: skip
]


@pytest.mark.parametrize("recipe", ["oftsr", "gtasr"])
@pytest.mark.parametrize(
    "flags", FLAGS, ids=["groups", "groups+prompt+estimator", "prompt", "hfp", "adv", "adv-unet", "uniform+mixture"]
)
def test_every_recipe_and_flag_combination_trains(recipe, flags, photo_dir, tmp_path):
    fcfg = FlowConfig(scale=4, backbone="lrnet_t")
    base = weights.save(tmp_path / "t.safetensors", perturbed(fcfg, 2), weights.flow_card(fcfg, kind="teacher"))
    common = dict(data=tiny_data(photo_dir), train=tiny_train(tmp_path / "run", steps=3), **flags)
    if recipe == "oftsr":
        res = train_distill(DistillRunConfig(teacher=str(base), **common), progress=False)
    else:
        res = train_gtasr(GTASRRunConfig(init=str(base), **common), progress=False)
    assert len(res.losses) == 3 and all(torch.isfinite(torch.tensor(v)) for v in res.losses.values())
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    if "perception" in flags and flags["perception"].w_adv > 0:
        assert state["critic_optimizer"]["state"], "the critic never stepped"
    up = Upscaler.from_pretrained(tmp_path / "run" / "ema.safetensors")
    x = torch.rand(1, 3, 8, 8)
    assert up.upscale_tensor(x, realism=0.2).shape == (1, 3, 32, 32)
    if up.model.cfg.estimator:
        auto = up.upscale_tensor(x, realism="auto")
        assert auto.shape == (1, 3, 32, 32) and torch.isfinite(auto).all()
    else:
        with pytest.raises(ValueError, match="realism estimator"):
            up.upscale_tensor(x, realism="auto")


def test_estimator_needs_grouping(photo_dir, tmp_path):
    cfg = GTASRRunConfig(
        flow=FlowConfig(scale=4, backbone="lrnet_t"),
        rcod=RCODConfig(estimator=True),
        data=tiny_data(photo_dir),
        train=tiny_train(tmp_path / "e", steps=1),
    )
    with pytest.raises(ValueError, match="needs RCOD grouping"):
        train_gtasr(cfg, progress=False)


def test_semantic_and_lpips_terms_train_from_local_weights(photo_dir, tmp_path):
    from .test_eval import tiny_lpips_weights

    perception = PerceptionConfig(
        w_semantic=0.1,
        clip_path=tiny_clip(tmp_path / "clip"),
        w_lpips=0.1,
        lpips_dir=str(tiny_lpips_weights(tmp_path / "l")),
    )
    run_cfg = GTASRRunConfig(
        flow=FlowConfig(scale=4, backbone="lrnet_t"),
        perception=perception,
        data=tiny_data(photo_dir),
        train=tiny_train(tmp_path / "s", steps=2),
    )
    res = train_gtasr(run_cfg, progress=False)
    assert len(res.losses) == 2 and all(torch.isfinite(torch.tensor(v)) for v in res.losses.values())


# -- the registry and the rcod / vpd recipes -----------------------------------------------


def test_registry_knows_every_recipe_and_refuses_strangers():
    from snapsr.train import recipes

    assert recipes.names() == ["estimator", "gtasr", "oftsr", "rcod", "teacher", "vpd"]
    assert recipes.get("gtasr").config is GTASRRunConfig
    with pytest.raises(ValueError, match="known: estimator, gtasr, oftsr"):
        recipes.get("esrgan")
    with pytest.raises(ValueError, match="registered twice"):
        recipes.recipe("gtasr", config=GTASRRunConfig, summary="")(lambda cfg, device: None)
    with pytest.raises(TypeError, match="runs a GTASRRunConfig"):
        recipes.get("gtasr").train(DistillRunConfig())


def test_rcod_recipe_trains_groups_prompt_and_estimator(photo_dir, tmp_path):
    from snapsr.train import recipes
    from snapsr.train.rcod import RCODRunConfig

    cfg = RCODRunConfig(
        flow=FlowConfig(scale=4, backbone="lrnet_t"),
        rcod=RCODConfig(groups=2, calib_batches=2, prompt=True, estimator=True),
        data=tiny_data(photo_dir),
        train=tiny_train(tmp_path / "r", steps=3),
    )
    res = recipes.get("rcod").train(cfg, progress=False)
    assert len(res.losses) == 3 and all(torch.isfinite(torch.tensor(v)) for v in res.losses.values())
    model, card = weights.load_flow(tmp_path / "r" / "ema.safetensors")
    assert model.cfg.prompt and model.cfg.estimator
    assert card.record["recipe"].startswith("RCOD") and len(card.record["rcod"]["boundaries_psnr"]) == 1
    with pytest.raises(ValueError, match="rcod.groups"):
        RCODRunConfig(rcod=RCODConfig(groups=0))


def test_vpd_recipe_distils_with_perception_terms(photo_dir, tmp_path):
    from snapsr.train import recipes
    from snapsr.train.vpd import VPDRunConfig

    fcfg = FlowConfig(scale=4, backbone="lrnet_t")
    base = weights.save(tmp_path / "t.safetensors", perturbed(fcfg, 2), weights.flow_card(fcfg, kind="teacher"))
    assert VPDRunConfig().perception.w_hfp > 0 and VPDRunConfig().perception.w_adv > 0
    cfg = VPDRunConfig(
        teacher=str(base),
        perception=PerceptionConfig(w_hfp=0.1, w_adv=0.1, adv_start=1, adv_ramp=1, d_channels=8),
        data=tiny_data(photo_dir),
        train=tiny_train(tmp_path / "v", steps=3),
    )
    recipes.get("vpd").train(cfg, progress=False)
    state = checkpoint.load(tmp_path / "v" / "checkpoint.pt")
    assert state["critic_optimizer"]["state"], "the critic never stepped"
    assert weights.read_card(tmp_path / "v" / "ema.safetensors")["recipe"].startswith("VPD-SR")
    missing = dataclasses.replace(cfg, perception=dataclasses.replace(cfg.perception, clip_path=str(tmp_path / "no")))
    with pytest.raises(FileNotFoundError, match="no"):  # a CLIP path turns the semantic term on, and must exist
        recipes.get("vpd").train(missing, progress=False)


def test_cli_looks_recipes_up_and_checks_the_configs_recipe(tmp_path):
    from click.testing import CliRunner

    from snapsr.cli import main

    res = CliRunner().invoke(main, ["train", "list"])
    assert res.exit_code == 0 and all(n in res.output for n in ("teacher", "oftsr", "gtasr", "rcod", "vpd"))
    res = CliRunner().invoke(main, ["train", "distill", "--recipe", "rcod", "--dry-run", "train.steps=7"])
    assert res.exit_code == 0 and '"groups": 4' in res.output and '"steps": 7' in res.output
    (tmp_path / "v.toml").write_text('recipe = "vpd"\n')
    res = CliRunner().invoke(main, ["train", "distill", "--recipe", "oftsr", "--config", str(tmp_path / "v.toml")])
    assert res.exit_code == 2 and "config of the 'vpd' recipe" in res.output
    res = CliRunner().invoke(main, ["train", "distill", "--recipe", "esrgan", "--dry-run"])
    assert res.exit_code == 2 and "unknown training recipe 'esrgan'" in res.output


def test_output_distillation_matches_the_teachers_dial_from_the_same_noise(photo_dir, tmp_path):
    """A student of another architecture (here another size) learns the teacher's output at realism t
    from the same noise: its posterior mean blended towards its multi-step sample."""
    from snapsr.train.oftsr import OFTSRConfig, OutputDistillLoss

    teacher = perturbed(FlowConfig(scale=4, backbone="lrnet_t", sigma_p=0.2), 4)
    student = perturbed(FlowConfig(scale=4, backbone="lrnet_t", sigma_p=0.1), 5)
    cfg = OFTSRConfig(teacher_steps=3, teacher_sampler="euler")
    dial = DialTime(RCODConfig(), [], 0.0, 1.0, 4)
    loss = OutputDistillLoss(student, teacher, cfg, dial, lambda *a: torch.zeros(()))
    hr = torch.rand(2, 3, 16, 16)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    value = loss(lr, hr, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(hr.shape, generator=g)
    t, _ = dial(lr, hr, g)
    cond = student.condition(lr)
    x_t = teacher.start(cond, eps)
    mean = x_t + teacher.velocity(x_t, 0.0, cond)
    x = x_t
    for a, b in ((0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1)):
        x = x + (b - a) * teacher.velocity(x, a, cond)
    want = mean + t.view(-1, 1, 1, 1) * (x - mean)
    out = student.one_step(student.start(cond, eps), t, cond)
    assert torch.allclose(value, (out - want).abs().mean(), atol=1e-5)
    with pytest.raises(ValueError, match="teacher_sampler"):
        OFTSRConfig(teacher_sampler="dpm")
    # through the recipe: a card that says so; a one-step student is refused as the teacher
    tcfg = FlowConfig(scale=4, backbone="lrnet_t")
    t_path = weights.save(tmp_path / "t.safetensors", perturbed(tcfg, 2), weights.flow_card(tcfg, kind="teacher"))
    run_cfg = DistillRunConfig(
        teacher=str(t_path),
        student=FlowConfig(scale=4, backbone="lrnet_t", sigma_p=0.1),
        data=tiny_data(photo_dir),
        train=tiny_train(tmp_path / "o", steps=2),
    )
    train_distill(run_cfg, progress=False)
    card = weights.read_card(tmp_path / "o" / "ema.safetensors")
    assert card["distillation"] == "outputs" and card["kind"] == "student"
    s_path = weights.save(tmp_path / "s.safetensors", perturbed(tcfg, 2), weights.flow_card(tcfg, kind="student"))
    with pytest.raises(ValueError, match="multi-step flow"):
        train_distill(dataclasses.replace(run_cfg, teacher=str(s_path)), progress=False)


def test_gtasr_one_step_preconditioning_trains_and_ships(photo_dir, tmp_path):
    """``one_step_precond``: a student from a teacher's weights takes the one-step preconditioning,
    agrees with them at realism 0 before training, trains, and its weights carry it to the upscaler."""
    fcfg = FlowConfig(scale=4, backbone="lrnet_t")
    teacher = perturbed(fcfg, 2)
    base = weights.save(tmp_path / "t.safetensors", teacher, weights.flow_card(fcfg, kind="teacher"))
    student = make_student(teacher, RCODConfig(), one_step_precond=True)
    assert student.cfg.one_step_precond and not teacher.cfg.one_step_precond
    lr = torch.rand(1, 3, 8, 8)
    cond = teacher.condition(lr)
    x_0 = teacher.start(cond, torch.randn_like(cond))
    with torch.no_grad():
        assert torch.allclose(student.one_step(x_0, 0.0, cond), teacher.one_step(x_0, 0.0, cond), atol=1e-6)
        assert not torch.allclose(student.one_step(x_0, 1.0, cond), teacher.one_step(x_0, 1.0, cond), atol=1e-3)
    run_cfg = GTASRRunConfig(
        init=str(base),
        one_step_precond=True,
        gtasr=GTASRConfig(w_consistency=0.0, w_ta=0.0),
        data=tiny_data(photo_dir),
        train=tiny_train(tmp_path / "run", steps=2),
    )
    train_gtasr(run_cfg, progress=False)
    out = tmp_path / "run" / "ema.safetensors"
    model, _ = weights.load_flow(out)
    assert model.cfg.one_step_precond
    up = Upscaler.from_pretrained(out, dtype="fp32")
    assert up.card.student
    img = up.upscale_tensor(lr, realism=1.0)
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
    # the trajectory terms run the student from states along the path: refused with it
    with pytest.raises(ValueError, match="one_step_precond"):
        train_gtasr(
            dataclasses.replace(run_cfg, gtasr=GTASRConfig(), train=tiny_train(tmp_path / "bad")), progress=False
        )
