import dataclasses
import json
import math
import os
import signal

import pytest
import torch

from snapsr.config import from_dict, to_dict
from snapsr.data import HRCrops
from snapsr.degrade import DegradeConfig, degrade
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR
from snapsr.model.weights import load_flow
from snapsr.train import checkpoint, engine
from snapsr.train.config import DataConfig, TeacherRunConfig, TrainConfig
from snapsr.train.teacher import train_teacher


def tiny_cfg(photo_dir, out_dir, **train):
    return TeacherRunConfig(
        flow=FlowConfig(scale=4, sigma_p=0.2, backbone="lrnet_t"),
        degrade=DegradeConfig(),
        data=DataConfig(train_dir=str(photo_dir), val_dir=str(photo_dir), crop=32, val_crop=32, val_images=2),
        train=TrainConfig(
            **{
                "out_dir": str(out_dir),
                "steps": 8,
                "batch_size": 4,
                "lr": 3e-3,
                "warmup": 2,
                "precision": "fp32",
                "log_every": 1,
                "ckpt_every": 2,
                "val_every": 0,
                "val_steps": (1,),
                **train,
            }
        ),
    )


def held_out_loss(flow, photo_dir) -> float:
    """The loss on fixed crops, degradations, t and noise: free of the batch-to-batch noise."""
    hr = HRCrops(photo_dir, crop=32, batch_size=32, seed=99, log=lambda m: None)[0]
    g = torch.Generator().manual_seed(0)
    lr = degrade(hr, 4, DegradeConfig(), g)
    with torch.no_grad():
        return flow.loss(lr, hr, generator=g).item()


def test_loss_finite_and_falling(photo_dir, tmp_path):
    cfg = tiny_cfg(photo_dir, tmp_path / "run", steps=80, ckpt_every=1000)
    torch.manual_seed(cfg.train.seed)
    before = held_out_loss(FlowSR(cfg.flow), photo_dir)
    res = train_teacher(cfg, progress=False)
    losses = [res.losses[k] for k in sorted(res.losses)]
    assert len(losses) == 80 and all(math.isfinite(v) for v in losses)
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    trained = FlowSR(cfg.flow)
    trained.load_state_dict(state["model"])
    after = held_out_loss(trained, photo_dir)
    assert after < 0.97 * before, (before, after)


def test_resume_matches_uninterrupted_run(photo_dir, tmp_path):
    full = train_teacher(tiny_cfg(photo_dir, tmp_path / "a"), progress=False)
    part = train_teacher(tiny_cfg(photo_dir, tmp_path / "b"), progress=False, stop_at=3)
    assert part.step == 3 and checkpoint.load(tmp_path / "b" / "checkpoint.pt")["step"] == 3
    # resumed with loader workers (a different machine, say): the same batches, so the same run
    cfg = tiny_cfg(photo_dir, tmp_path / "b")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, workers=2))
    rest = train_teacher(cfg, resume=True, progress=False)
    assert rest.step == 8
    for k in range(4, 9):
        assert rest.losses[k] == pytest.approx(full.losses[k], rel=1e-6, abs=1e-9), k
    # and the weights that come out are the same
    a, _ = load_flow(tmp_path / "a" / "ema.safetensors")
    b, _ = load_flow(tmp_path / "b" / "ema.safetensors")
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), n


def test_resume_refuses_other_config(photo_dir, tmp_path):
    train_teacher(tiny_cfg(photo_dir, tmp_path / "r"), progress=False, stop_at=2)
    other = tiny_cfg(photo_dir, tmp_path / "r")
    other = TeacherRunConfig(
        flow=FlowConfig(scale=4, sigma_p=0.4, backbone="lrnet_t"),
        degrade=other.degrade,
        data=other.data,
        train=other.train,
    )
    with pytest.raises(ValueError, match="another config"):
        train_teacher(other, resume=True, progress=False)


def test_checkpoint_holds_config_and_run_folder(photo_dir, tmp_path):
    cfg = tiny_cfg(photo_dir, tmp_path / "c", steps=2, val_every=2)
    train_teacher(cfg, progress=False)
    state = checkpoint.load(tmp_path / "c" / "checkpoint.pt")
    assert from_dict(TeacherRunConfig, state["config"]) == cfg
    assert json.loads((tmp_path / "c" / "config.json").read_text()) == to_dict(cfg)
    assert (tmp_path / "c" / "val_0000002.png").is_file()
    model, card = load_flow(tmp_path / "c" / "ema.safetensors")
    assert card.kind == "teacher" and card.record["steps_trained"] == 2
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "c").iterdir())


def test_nan_guard_stops(photo_dir, tmp_path, monkeypatch):
    from snapsr.model.flow import FlowSR

    monkeypatch.setattr(FlowSR, "loss", lambda self, lr, hr, **kw: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(FloatingPointError, match="non-finite"):
        train_teacher(tiny_cfg(photo_dir, tmp_path / "n", max_bad_steps=3), progress=False)


def test_stop_flag_catches_sigterm():
    with engine.StopFlag() as stop:
        assert not stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop and stop.signal == signal.SIGTERM


def test_signal_during_training_checkpoints(photo_dir, tmp_path, monkeypatch):
    # a SIGINT arriving mid-run: the loop finishes the step, checkpoints and returns
    from snapsr.train import loop as teacher_mod

    real = teacher_mod.degrade
    calls = {"n": 0}

    def degrade_then_signal(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(teacher_mod, "degrade", degrade_then_signal)
    cfg = tiny_cfg(photo_dir, tmp_path / "s")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_dir=""))  # degrade only in steps
    res = train_teacher(cfg, progress=False)
    assert res.stopped_by_signal and res.step == 3
    assert checkpoint.load(tmp_path / "s" / "checkpoint.pt")["step"] == 3


def test_precision_resolution():
    assert engine.resolve_precision("fp32", torch.device("cpu")) == torch.float32
    assert engine.resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    auto = engine.resolve_precision("auto", torch.device("cpu"))
    assert auto == (torch.bfloat16 if engine.cpu_supports_bf16() else torch.float32)
    with pytest.raises(ValueError):
        engine.resolve_precision("fp8", torch.device("cpu"))


def test_warmup_cosine_schedule():
    f = lambda k: engine.warmup_cosine(k, warmup=10, total=110, base=1e-3, floor=1e-5)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(110) == pytest.approx(0.01)
    assert all(f(k) >= f(k + 1) for k in range(10, 110))


def test_torchrun_two_processes(photo_dir, tmp_path):
    """The same command under torchrun: DDP on gloo, rank 0 writes the checkpoint."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",  # a free port of its own: a fixed one can be taken
        "-m",
        "snapsr",
        "train",
        "teacher",
        "--device",
        "cpu",
        f"data.train_dir={photo_dir}",
        "data.val_dir=",
        "data.crop=32",
        "flow.backbone=lrnet_t",
        "train.steps=3",
        "train.batch_size=2",
        "train.precision=fp32",
        "train.ckpt_every=100",
        f"train.out_dir={out}",
        "train.log_every=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = checkpoint.load(out / "checkpoint.pt")
    assert state["step"] == 3
    lines = (out / "log.jsonl").read_text().splitlines()
    assert len(lines) == 3  # rank 0 logs; rank 1 does not


def test_run_stats_count_each_step_once_across_resumes(tmp_path):
    from snapsr.train.loop import run_stats

    lines = [
        {"step": 20, "samples": 320, "samples_s": 32.0},  # 10 s
        {"step": 40, "samples": 320, "samples_s": 16.0},  # 20 s
        {"step": 40, "val_psnr_y": {"t0": 30.0}},
        {"step": 20, "samples": 320, "samples_s": 32.0},  # resumed from step 20 after a kill: not again
        {"step": 60, "samples_s": 64.0},  # an older log line without "samples": steps x batch
    ]
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"step": 80, "samp'  # the last line cut by a kill
    (tmp_path / "log.jsonl").write_text(text)
    stats = run_stats(tmp_path, 16)
    assert stats["samples_seen"] == 960 and abs(stats["train_hours"] * 3600 - 35) < 3.6
    assert run_stats(tmp_path, 16, upto=40)["samples_seen"] == 640
    assert run_stats(tmp_path / "none", 16) == {"samples_seen": 0, "train_hours": 0.0}


def test_resume_accepts_config_keys_added_since_at_their_defaults(tmp_path):
    from snapsr.train import checkpoint
    from snapsr.train.rcod import RCODRunConfig

    cfg = RCODRunConfig()
    old = to_dict(cfg)
    del old["rcod"]["space"]  # a checkpoint written before rcod.space existed
    checkpoint.save(tmp_path / "c.pt", {"config": old, "step": 3})
    assert checkpoint.load_resume(tmp_path / "c.pt", cfg)["step"] == 3
    latent = RCODRunConfig(rcod=dataclasses.replace(cfg.rcod, space="latent"))
    with pytest.raises(ValueError, match="another config"):  # the new key away from its default
        checkpoint.load_resume(tmp_path / "c.pt", latent)
