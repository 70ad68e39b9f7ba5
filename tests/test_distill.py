import dataclasses

import pytest
import torch

from snapsr.infer.upscaler import Upscaler
from snapsr.model import weights
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR
from snapsr.train import checkpoint
from snapsr.train.config import DataConfig, TrainConfig
from snapsr.train.oftsr import DistillRunConfig, OFTSRConfig, OFTSRLoss, train_distill
from tests.conftest import perturbed


def test_bootstrap_target_is_the_teachers_euler_step():
    cfg = FlowConfig(scale=2, backbone="lrnet_t")
    student, teacher = perturbed(cfg, 0), perturbed(cfg, 1)
    loss = OFTSRLoss(student, teacher, OFTSRConfig(teacher_solver="euler"))
    cond, x_0 = torch.rand(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    t, s = torch.tensor([0.3, 0.6]), torch.tensor([0.35, 0.65])
    with torch.no_grad():
        v_t = student.velocity(x_0, t, cond)
        x_t = x_0 + t.view(-1, 1, 1, 1) * v_t
        v_psi, v_bar = loss.teacher_velocity(x_t, t, s, cond)
        target = loss.bootstrap_target(v_t, v_bar, t, s)
    # the state the target implies at s is the teacher's Euler step from the student's state at t
    implied = x_0 + s.view(-1, 1, 1, 1) * target
    assert torch.allclose(implied, x_t + (s - t).view(-1, 1, 1, 1) * v_psi, atol=1e-5)
    # and with student == teacher at t = 0 the implied state is the teacher's first Euler step
    same = OFTSRLoss(teacher, teacher, OFTSRConfig(teacher_solver="euler"))
    z = torch.zeros(2)
    with torch.no_grad():
        v0 = teacher.velocity(x_0, z, cond)
        tgt = same.bootstrap_target(v0, same.teacher_velocity(x_0, z, s, cond)[1], z, s)
    assert torch.allclose(x_0 + s.view(-1, 1, 1, 1) * tgt, x_0 + s.view(-1, 1, 1, 1) * v0, atol=1e-5)


def test_rk2_midpoint_and_loss_gradients():
    cfg = FlowConfig(scale=2, backbone="lrnet_t")
    student, teacher = perturbed(cfg, 0), perturbed(cfg, 1)
    loss = OFTSRLoss(student, teacher, OFTSRConfig())
    x, cond = torch.randn(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    t, s = torch.tensor([0.2]), torch.tensor([0.4])
    _, v_bar = loss.teacher_velocity(x, t, s, cond)
    v1 = teacher.velocity(x, t, cond)
    assert torch.allclose(v_bar, teacher.velocity(x + 0.1 * v1, torch.tensor([0.3]), cond), atol=1e-5)
    value = loss(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 8, 8), torch.Generator().manual_seed(0))
    value.backward()
    assert value.item() > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_distill_smoke_run_resume_and_upscale(photo_dir, tmp_path):
    fcfg = FlowConfig(scale=4, backbone="lrnet_t")
    teacher_path = weights.save(tmp_path / "t.safetensors", perturbed(fcfg, 2), weights.flow_card(fcfg, kind="teacher"))
    cfg = DistillRunConfig(
        teacher=str(teacher_path),
        data=DataConfig(train_dir=str(photo_dir), val_dir=str(photo_dir), crop=32, val_crop=32, val_images=1),
        train=TrainConfig(
            out_dir=str(tmp_path / "d"),
            steps=4,
            batch_size=2,
            lr=1e-3,
            warmup=1,
            precision="fp32",
            ckpt_every=2,
            val_every=4,
            val_steps=(1,),
        ),
    )
    full = train_distill(
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out_dir=str(tmp_path / "f"))), progress=False
    )
    train_distill(cfg, progress=False, stop_at=2)
    rest = train_distill(cfg, resume=True, progress=False)
    assert rest.losses[4] == full.losses[4] and checkpoint.load(tmp_path / "d" / "checkpoint.pt")["step"] == 4
    assert (tmp_path / "d" / "val_0000004.png").is_file()
    up = Upscaler.from_pretrained(tmp_path / "d" / "ema.safetensors")
    assert up.card.kind == "student" and up.card.student
    x = torch.rand(1, 3, 8, 8)
    a, b = up.upscale_tensor(x, realism=0.0), up.upscale_tensor(x, realism=1.0)
    assert a.shape == (1, 3, 32, 32) and (a - b).abs().mean() > 0
    m = torch.zeros(32, 32)
    m[:, 16:] = 1
    mixed = up.upscale_tensor(x, realism_map=m)
    # the student's one step: output = x_0 + v(x_0, t) with t per pixel
    model = up.model
    cond = model.condition(x)
    from snapsr.infer.tiling import position_noise

    x_0 = model.start(cond, position_noise(0, 3, 0, 0, 32, 32))
    ref = model.one_step(x_0, m.view(1, 1, 32, 32), cond).clamp(0, 1)
    assert torch.allclose(mixed, ref, atol=1e-5)


def test_anchor_target_is_the_teachers_trajectory(monkeypatch):
    cfg = FlowConfig(scale=2, backbone="lrnet_t")
    student, teacher = perturbed(cfg, 0), perturbed(cfg, 1)
    x_0, cond = torch.randn(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    t = torch.tensor([0.25, 0.8])
    with torch.no_grad():
        # one RK2 step over [0, t] is the teacher's RK2 average velocity from x_0
        one = OFTSRLoss(student, teacher, OFTSRConfig(anchor_steps=1))
        assert torch.allclose(one.anchor_target(x_0, t, cond), one.teacher_velocity(x_0, 0 * t, t, cond)[1], atol=1e-5)
        # more steps: the same as integrating the teacher's ODE by hand, per sample
        four = OFTSRLoss(student, teacher, OFTSRConfig(anchor_steps=4, teacher_solver="euler"))
        for i in range(2):
            x = x_0[i : i + 1]
            for k in range(4):
                x = x + t[i] / 4 * teacher.velocity(x, (k * t[i] / 4).view(1), cond[i : i + 1])
            got = four.anchor_target(x_0, t, cond)[i : i + 1]
            assert torch.allclose(x_0[i : i + 1] + t[i] * got, x, atol=1e-5)
    # the anchor term adds a positive loss with a gradient for the student only
    base = OFTSRLoss(student, teacher, OFTSRConfig(w_bootstrap=0, w_boundary=0, w_align=0))
    anch = OFTSRLoss(student, teacher, OFTSRConfig(w_bootstrap=0, w_boundary=0, w_align=0, w_anchor=1.0))
    lr, hr = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 8, 8)
    assert base(lr, hr, torch.Generator().manual_seed(0)).item() == 0
    value = anch(lr, hr, torch.Generator().manual_seed(0))
    value.backward()
    assert value.item() > 0 and all(p.grad is None for p in teacher.parameters())
    # the dial-order hinge is a further term of the same loss: never negative, zero when switched off
    order = OFTSRLoss(student, teacher, OFTSRConfig(w_bootstrap=0, w_boundary=0, w_align=0, w_order=0.5))
    import snapsr.train.oftsr as distill_mod

    seen = []

    def fake_order(lower, higher, cutoff):  # the hinge itself is tested in test_losses
        seen.append((lower.shape, higher.shape))
        return torch.tensor(0.25)

    monkeypatch.setattr(distill_mod, "dial_order_loss", fake_order)
    assert order(lr, hr, torch.Generator().manual_seed(0)).item() == pytest.approx(0.5 * 0.25)
    assert seen == [(hr.shape, hr.shape)]
    with pytest.raises(ValueError, match="anchor_steps"):
        OFTSRConfig(anchor_steps=0)


def test_distill_init_from_a_student(photo_dir, tmp_path):
    fcfg = FlowConfig(scale=4, backbone="lrnet_t")
    teacher_path = weights.save(tmp_path / "t.safetensors", perturbed(fcfg, 2), weights.flow_card(fcfg, kind="teacher"))
    stud = FlowSR(dataclasses.replace(fcfg, estimator=True))
    stud.load_state_dict(perturbed(dataclasses.replace(fcfg, estimator=True), 5).state_dict())
    stud_path = weights.save(tmp_path / "s.safetensors", stud, weights.flow_card(stud.cfg, kind="student"))
    from snapsr.train.oftsr import build_oftsr
    from snapsr.train.rcod import RCODConfig

    cfg = DistillRunConfig(
        teacher=str(teacher_path),
        init=str(stud_path),
        rcod=RCODConfig(groups=2, estimator=True, calib_batches=1),
        data=DataConfig(train_dir=str(photo_dir), val_dir=str(photo_dir), crop=32),
        train=TrainConfig(batch_size=2),
    )
    recipe = build_oftsr(cfg, torch.device("cpu"))
    for (n, p), q in zip(recipe.model.state_dict().items(), stud.state_dict().values()):
        assert torch.equal(p, q), n
    assert recipe.card(0)["init"] == str(stud_path)
    # a student without the estimator cannot start a run that trains one
    with pytest.raises(ValueError, match="estimator"):
        build_oftsr(dataclasses.replace(cfg, rcod=RCODConfig(groups=2, calib_batches=1)), torch.device("cpu"))
