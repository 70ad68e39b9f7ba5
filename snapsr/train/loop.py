"""The training loop every recipe shares, readable top to bottom.

A recipe (``teacher.py``, ``oftsr.py``, ``gtasr.py``) builds a ``Recipe``: the model to train (EMA'd and
saved), a loss module ``forward(lr, hr, generator) -> loss``, the predictions to validate and
the weights card. A batch at step k depends only on ``(seed, k, rank)`` (crops, degradations,
t and noise), so a checkpoint holds model, EMA, optimizer, scheduler and step, and a resumed
run continues exactly as if it had never stopped.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from snapsr.config import to_dict
from snapsr.data import HRCrops, stream_seed
from snapsr.degrade import degrade
from snapsr.eval.metrics import psnr, to_uint8_hwc
from snapsr.infer.imageio import list_files, read_rgb, to_tensor
from snapsr.infer.imagewrite import save_png
from snapsr.model import weights
from snapsr.model.flow import upsample
from snapsr.train import checkpoint, engine
from snapsr.train.peer_bank import MANIFEST, PeerBankCrops

Predictor = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # (model, lr, eps) -> sr


def run_stats(out_dir: str | Path, batch: int, upto: int | None = None) -> dict:
    """Samples seen and wall hours of a run (over all its resumed sessions) from its ``log.jsonl``:
    each logged interval holds its step, its samples (else steps x ``batch``) and the samples/s it ran at."""
    path = Path(out_dir) / "log.jsonl"
    samples, seconds, last = 0, 0.0, 0
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if "samples_s" not in rec or (upto is not None and rec["step"] > upto):
                continue
            if rec["step"] <= last:  # a resumed run re-logs from its checkpoint: count each step once
                continue
            n = rec.get("samples") or (rec["step"] - last) * batch
            seconds += n / rec["samples_s"] if n and rec["samples_s"] > 0 else 0.0
            samples += n
            last = rec["step"]
    return {"samples_seen": samples, "train_hours": round(seconds / 3600, 3)}


def run_card(cfg, step: int) -> dict:
    """The card fields every recipe's weights carry: how far, how long and on what they were trained."""
    return {
        "steps_trained": step,
        **run_stats(cfg.train.out_dir, cfg.train.batch_size, step),
        "degradation": cfg.degrade.mode,
        "degradation_mix": {"clean": cfg.degrade.clean_share, "light": cfg.degrade.light_share},
        "train_data": cfg.data.train_dir,
        "crop": cfg.data.crop,
        "batch_size": cfg.train.batch_size,
        **_bank_card(cfg.data.peer_bank),
    }


def _bank_card(bank: str) -> dict:
    """A peer bank's provenance for the card: its folder, peer, complete passes and (lr, peer) pairs."""
    if not bank:
        return {}
    path = Path(bank) / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    pairs = len(list(Path(bank).glob("p*/*.peer.png")))
    return {
        "peer_bank": {
            "path": bank,
            "peer": manifest.get("peer", ""),
            "passes": manifest.get("passes", 0),
            "pairs": pairs,
        }
    }


@dataclass
class Critic:
    """A second network trained against the model (a GAN discriminator), with its own optimizer."""

    module: nn.Module
    loss: Callable[[], torch.Tensor]  # its loss on the tensors of the model's last step
    lr: float
    active: Callable[[int], bool]  # whether it trains at a step
    betas: tuple[float, float] = (0.5, 0.99)


@dataclass
class Recipe:
    model: nn.Module  # trained, averaged into the EMA, saved
    loss: nn.Module  # forward(lr, hr, generator) -> scalar loss
    predictors: dict[str, Predictor]  # validation outputs by name
    card: Callable[[int], dict]  # weights card at a step
    scale: int
    on_step: Callable[[int], None] | None = None  # told the step index before each step
    state: dict[str, nn.Module] = field(default_factory=dict)  # more modules to checkpoint (a frozen reference)
    critic: Critic | None = None
    fresh: tuple[str, ...] = ()  # parameters new in this run (a grown backbone's): lr x train.fresh_lr_mult


@dataclass
class RunResult:
    step: int
    losses: dict[int, float]  # step -> loss of the steps this call ran
    out_dir: Path
    stopped_by_signal: bool = False


# ---------------------------------------------------------------------------
# validation


def make_val_set(val_dir: str, cfg, scale: int, device) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Centre HR crops of the val images, degraded once with a fixed seed: ``(name, lr, hr)``."""
    if not val_dir or not Path(val_dir).is_dir():
        return []
    s, c = scale, cfg.data.val_crop - cfg.data.val_crop % scale
    out = []
    for path in list_files(val_dir)[: cfg.data.val_images]:
        try:
            img = read_rgb(path)
        except Exception as e:  # noqa: BLE001 (a bad val image is reported, not fatal)
            print(f"skipping val image {path}: {e}", file=sys.stderr)
            continue
        h, w = img.shape[:2]
        ch, cw = min(c, h - h % s), min(c, w - w % s)
        y, x = (h - ch) // 2, (w - cw) // 2
        hr = to_tensor(img[y : y + ch, x : x + cw]).unsqueeze(0).to(device)
        g = torch.Generator().manual_seed(stream_seed("val", path.name))
        out.append((path.name, degrade(hr, s, cfg.degrade, g), hr))
    return out


@torch.no_grad()
def validate(model: nn.Module, val_set, predictors: dict[str, Predictor], out_png: Path | None, scale: int):
    """Mean PSNR-Y of bicubic and of each predictor; optional PNG grid LR | bicubic | predictions | HR."""
    if not val_set:
        return {}
    scores: dict[str, list[float]] = {"bicubic": []}
    rows = []
    for name, lr, hr in val_set:
        g = torch.Generator().manual_seed(stream_seed("val-noise", name))
        bic = upsample(lr, scale).clamp(0, 1)
        ref = to_uint8_hwc(hr[0])
        scores["bicubic"].append(psnr(to_uint8_hwc(bic[0]), ref, scale, True))
        row = [torch.nn.functional.interpolate(lr, scale_factor=scale, mode="nearest")[0], bic[0]]
        eps = torch.randn(hr.shape, generator=g).to(hr)
        for key, predict in predictors.items():
            sr = predict(model, lr, eps).float().clamp(0, 1)
            scores.setdefault(key, []).append(psnr(to_uint8_hwc(sr[0]), ref, scale, True))
            row.append(sr[0])
        rows.append(torch.cat([*row, hr[0]], dim=-1))
    if out_png is not None:
        width = max(r.shape[-1] for r in rows)
        rows = [torch.nn.functional.pad(r, (0, width - r.shape[-1])) for r in rows]
        save_png(torch.cat(rows, dim=-2), out_png)
    return {k: sum(v) / len(v) for k, v in scores.items()}


# ---------------------------------------------------------------------------
# the run


def _training_data(cfg, scale: int, rank: int) -> torch.utils.data.Dataset:
    """Batches by step: HR crops to degrade on the fly, or ``(hr, lr, peer)`` from a peer bank."""
    crop, tc = cfg.data.crop - cfg.data.crop % scale, cfg.train
    bank = cfg.data.peer_bank
    if bank:
        return PeerBankCrops(bank, crop=crop, scale=scale, batch_size=tc.batch_size, seed=tc.seed, rank=rank)
    return HRCrops(
        cfg.data.train_dir,
        crop=crop,
        batch_size=tc.batch_size,
        multiscale=cfg.data.multiscale,
        cache=cfg.data.cache,
        seed=tc.seed,
        rank=rank,
    )


def _critic_step(critic: Critic, opt: torch.optim.Optimizer, d, amp, clip: float) -> None:
    critic.module.requires_grad_(True)  # trainable only here, frozen while the model trains against it
    with engine.autocast(d.device, amp):
        loss = critic.loss()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if d.world > 1:  # the critic is not DDP-wrapped: average its gradients by hand
        for p in critic.module.parameters():
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= d.world
    torch.nn.utils.clip_grad_norm_(critic.module.parameters(), clip)
    opt.step()
    critic.module.requires_grad_(False)


def run(
    cfg,
    build: Callable[[object, torch.device], Recipe],
    *,
    resume: bool = False,
    stop_at: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> RunResult:
    """Train (or continue) ``build(cfg, device)``; ``stop_at`` ends this call early, as a kill would.

    ``cfg`` is a run config with ``data``, ``degrade`` and ``train`` sections.
    """
    d = engine.init_distributed(device)
    tc = cfg.train
    out = Path(tc.out_dir)
    ckpt_path = out / "checkpoint.pt"
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")

    torch.manual_seed(tc.seed)
    recipe = build(cfg, d.device)
    flow = recipe.model
    if tc.channels_last:
        flow = flow.to(memory_format=torch.channels_last)
    ema = engine.EMA(flow, tc.ema_decay)
    fresh = set(recipe.fresh) if tc.fresh_lr_mult != 1.0 else set()  # one group: older checkpoints resume
    named = list(flow.named_parameters())
    groups = [
        {"params": [p for n, p in named if n not in fresh], "lr": tc.lr},
        {"params": [p for n, p in named if n in fresh], "lr": tc.lr * tc.fresh_lr_mult},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: engine.warmup_cosine(k, warmup=tc.warmup, total=tc.steps, base=tc.lr, floor=tc.min_lr)
    )
    amp = engine.resolve_precision(tc.precision, d.device)
    scaler = torch.amp.GradScaler(d.device.type, enabled=amp == torch.float16)
    critic = recipe.critic
    opt_c = (
        torch.optim.AdamW(critic.module.parameters(), lr=critic.lr, betas=critic.betas, weight_decay=0.0)
        if critic is not None
        else None
    )

    step = 0
    if resume and ckpt_path.is_file():
        state = checkpoint.load_resume(ckpt_path, cfg)
        flow.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        engine.set_rng_state(state["rng"])
        for name, module in recipe.state.items():
            module.load_state_dict(state["state"][name])
        if critic is not None:
            critic.module.load_state_dict(state["critic"])
            opt_c.load_state_dict(state["critic_optimizer"])
        step = int(state["step"])
        if d.main:
            print(f"resumed from {ckpt_path} at step {step}", file=sys.stderr)
    elif resume and d.main:
        print(f"no checkpoint in {out}; starting from step 0", file=sys.stderr)

    loss_fn: nn.Module = recipe.loss
    if d.world > 1:
        loss_fn = DDP(loss_fn, device_ids=[d.local_rank] if d.device.type == "cuda" else None)

    bank = cfg.data.peer_bank
    if bank and not getattr(recipe.loss, "takes_peer", False):
        raise ValueError(f"data.peer_bank ({bank}) is an anchor target of the gtasr recipe; this recipe has none")
    data = _training_data(cfg, recipe.scale, d.rank)
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=None,
        sampler=range(step, tc.steps),
        num_workers=cfg.data.workers,
        persistent_workers=cfg.data.workers > 0,
    )
    val_set = make_val_set(cfg.data.val_dir, cfg, recipe.scale, d.device) if d.main else []

    def save_ckpt():
        if not d.main:
            return
        checkpoint.save(
            ckpt_path,
            {
                "step": step,
                "model": flow.state_dict(),
                "ema": ema.model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": engine.rng_state(),
                "config": to_dict(cfg),
                "state": {name: module.state_dict() for name, module in recipe.state.items()},
                **(
                    {"critic": critic.module.state_dict(), "critic_optimizer": opt_c.state_dict()}
                    if critic is not None
                    else {}
                ),
            },
        )
        weights.save(out / "ema.safetensors", ema.model, recipe.card(step))

    losses: dict[int, float] = {}
    bad = 0
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    bar = None
    if progress and d.main and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=tc.steps, initial=step, unit="step", dynamic_ncols=True)
    log_file = open(out / "log.jsonl", "a") if d.main else None  # noqa: SIM115
    t_last, n_last = time.perf_counter(), 0
    stopped = False
    consistent = True  # False while an optimizer step is half applied
    try:
        with engine.StopFlag() as stop:
            flow.train()
            for batch in loader:
                if step >= end:
                    break
                g = torch.Generator().manual_seed(stream_seed("step", tc.seed, step, d.rank))
                if bank:  # degraded when the bank was built; the peer's upscale is the anchor target
                    hr, lr, peer = (x.to(d.device, non_blocking=True) for x in batch)
                    extra = {"peer": peer}
                else:
                    hr = batch.to(d.device, non_blocking=True)
                    lr, extra = degrade(hr, recipe.scale, cfg.degrade, g), {}
                if tc.channels_last:
                    hr, lr = (
                        hr.contiguous(memory_format=torch.channels_last),
                        lr.contiguous(memory_format=torch.channels_last),
                    )
                if recipe.on_step is not None:
                    recipe.on_step(step)
                with engine.autocast(d.device, amp):
                    loss = loss_fn(lr, hr, g, **extra)
                if not torch.isfinite(loss):
                    bad += 1
                    opt.zero_grad(set_to_none=True)
                    print(f"step {step}: non-finite loss ({loss.item()}), skipped", file=sys.stderr)
                    if bad >= tc.max_bad_steps:
                        raise FloatingPointError(f"{bad} consecutive non-finite losses; stopping at step {step}")
                    step += 1
                    continue
                bad = 0
                consistent = False
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(flow.parameters(), tc.grad_clip)
                scaler.step(opt)
                scaler.update()
                sched.step()
                if critic is not None and critic.active(step):
                    _critic_step(critic, opt_c, d, amp, tc.grad_clip)
                ema.update(flow, step)
                step += 1
                consistent = True
                losses[step] = loss.item()
                n_last += tc.batch_size * d.world

                if d.main and (step % tc.log_every == 0 or step == end):
                    now = time.perf_counter()
                    rate = n_last / (now - t_last)
                    t_last, n_last, n_interval = now, 0, n_last
                    rec = {"step": step, "loss": losses[step], "lr": sched.get_last_lr()[0], "samples_s": rate}
                    rec["samples"] = n_interval  # for the card's samples and hours (run_stats)
                    log_file.write(json.dumps(rec) + "\n")
                    log_file.flush()
                    if bar is not None:
                        bar.set_postfix(loss=f"{losses[step]:.4f}", samples_s=f"{rate:.1f}")
                if bar is not None:
                    bar.update(1)
                if step % tc.ckpt_every == 0:
                    save_ckpt()
                if d.main and tc.val_every and step % tc.val_every == 0 and val_set:
                    with engine.autocast(d.device, amp):
                        scores = validate(
                            ema.model, val_set, recipe.predictors, out / f"val_{step:07d}.png", recipe.scale
                        )
                    log_file.write(json.dumps({"step": step, "val_psnr_y": scores}) + "\n")
                    log_file.flush()
                    print(
                        f"step {step} val PSNR-Y " + " ".join(f"{k}={v:.2f}" for k, v in scores.items()),
                        file=sys.stderr,
                    )
                if stop:
                    stopped = True
                    break
    finally:
        # A signal, an error or a normal end: the last completed step is on disk.
        if consistent:
            save_ckpt()
        if bar is not None:
            bar.close()
        if log_file is not None:
            log_file.close()
    engine.shutdown_distributed()
    if stopped and d.main:
        print(f"stopped by signal at step {step}; checkpoint in {ckpt_path}", file=sys.stderr)
    return RunResult(step=step, losses=losses, out_dir=out, stopped_by_signal=stopped)
