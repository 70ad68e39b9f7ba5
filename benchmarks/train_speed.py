"""Training throughput (samples/s) of each backbone size, and one-step inference time for a
128x128 LR at x4, on this machine. A script, not a test:

    python benchmarks/train_speed.py [--device cpu|cuda] [--json out.json]

Each row times full teacher steps (degradation on the batch, flow-matching loss, backward,
AdamW, EMA) on synthetic HR crops, median of timed steps after warm-up, with bicubic
upsampling timed on the same LR for reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from snapsr.degrade import DegradeConfig, degrade
from snapsr.model import backbones
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR
from snapsr.train.engine import EMA, autocast, resolve_precision


def timed(fn, repeats: int, warmup: int = 2, sync=lambda: None) -> float:
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bench_one(name: str, amp: torch.dtype, dev: torch.device, args, sync) -> dict:
    flow = FlowSR(FlowConfig(backbone=name)).to(dev).to(memory_format=torch.channels_last)
    ema = EMA(flow, 0.999)
    opt = torch.optim.AdamW(flow.parameters(), lr=1e-4)
    hr = torch.rand(args.batch, 3, args.crop, args.crop, device=dev)
    g = torch.Generator().manual_seed(0)

    def step():
        lr = degrade(hr, 4, DegradeConfig(), g)
        with autocast(dev, amp):
            loss = flow.loss(lr, hr, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(flow, 100)

    sec = timed(step, args.steps, sync=sync)
    lr1 = torch.rand(1, 3, 128, 128, device=dev)
    flow.eval()
    with torch.no_grad(), autocast(dev, amp):
        one = timed(lambda: flow.sample(lr1, steps=1), args.steps, sync=sync)
    bic = timed(lambda: F.interpolate(lr1, scale_factor=4, mode="bicubic"), args.steps, sync=sync)
    return {
        "backbone": name,
        "params_M": sum(p.numel() for p in flow.parameters()) / 1e6,
        "precision": str(amp).replace("torch.", ""),
        "device": str(dev),
        "train_samples_s": args.batch / sec,
        "one_step_128_s": one,
        "bicubic_128_s": bic,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--backbones", default=",".join(n for n in backbones.names() if n != "lrnet_t"))
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    for name in args.backbones.split(","):
        for precision in ("fp32", "auto"):
            r = bench_one(name, resolve_precision(precision, dev), dev, args, sync)
            rows.append(r)
            print(
                f"{name:8s} {r['params_M']:5.2f}M {r['precision']:9s} train {r['train_samples_s']:7.1f} samples/s  "
                f"one step 128x128->512x512 {r['one_step_128_s'] * 1000:8.1f} ms  "
                f"(bicubic {r['bicubic_128_s'] * 1000:.1f} ms)",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
