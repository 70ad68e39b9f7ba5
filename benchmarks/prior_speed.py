"""Speed and memory of the latent backbone on Stable Diffusion 2.1 base's architecture (randomly
initialised: no weights needed) beside lrnet_s, in one run: seconds per 512x512 output at batch 1
and 8, and peak CUDA memory, for a one-step upscale (x4 from 128x128).

    python benchmarks/prior_speed.py [--device cuda] [--dtype bf16] [--batches 1,8] [--repeats 10] [--tiny]

On a CPU it runs batch 1 only unless told otherwise (SD's UNet takes seconds there). ``--tiny``
uses the test configs (a smoke run of this script). Needs pip install -e ".[prior]".
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR


def time_one_step(model: FlowSR, batch: int, device, dtype, repeats: int) -> tuple[float, float]:
    """Median seconds per image and peak CUDA MB of ``model.one_step`` at ``batch`` 128x128 LR inputs."""
    lr = torch.rand(batch, 3, 128, 128, device=device)
    cond = model.condition(lr)
    x_0 = model.start(cond, torch.randn_like(cond))
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        for i in range(repeats + 2):  # two warm-up passes
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.one_step(x_0, 0.5, cond)
            if cuda:
                torch.cuda.synchronize()
            if i >= 2:
                times.append((time.perf_counter() - t0) / batch)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
    return statistics.median(times), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bf16", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--batches", default=None, help="Comma list (default: 1,8 on CUDA, 1 on the CPU).")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--tiny", action="store_true", help="The tiny test configs instead of SD 2.1's.")
    ap.add_argument("--json", help="Write the rows here.")
    a = ap.parse_args()
    device = torch.device(a.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    batches = [int(b) for b in (a.batches or ("1,8" if device.type == "cuda" else "1")).split(",")]
    prior = "tiny" if a.tiny else "random-sd2.1"
    models = {
        "lrnet_s": FlowSR(FlowConfig(scale=4)),
        f"sd_latent ({prior})": FlowSR(
            FlowConfig(scale=4, sigma_p=0.0, precond=False, backbone="sd_latent", backbone_args={"prior": prior})
        ),
    }
    rows = []
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"{name}, {a.dtype}, one step x4 from 128x128 to 512x512, median of {a.repeats}")
    print("| backbone | parameters | batch | s per 512x512 output | peak CUDA MB |\n|---|---:|---:|---:|---:|")
    for label, model in models.items():
        model = model.to(device).eval()
        params = sum(p.numel() for p in model.parameters())
        for b in batches:
            sec, peak = time_one_step(model, b, device, dtype, a.repeats)
            rows.append({"backbone": label, "parameters": params, "batch": b, "seconds": sec, "peak_mb": peak})
            print(f"| {label} | {params / 1e6:.1f}M | {b} | {sec:.4f} | {peak:.0f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": name, "dtype": a.dtype, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
