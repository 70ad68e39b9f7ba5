"""How close a network's output comes to a peer's (Real-ESRGAN x4plus) and to the HR, per dial value.

The diagnostic behind the peer-bank stages (campaign/README.md, sessions 27-28): when the realistic
end learns Real-ESRGAN's output, PSNR-Y against that output says whether the network can fit it at
all, apart from whether the result is any good. Each LR of a referenced track is upscaled at each
``--realism`` with a fixed start noise per image; the peer's outputs come from its cache (as in
``snapsr eval --peer``, which fills it). Prints one row per network and dial value:

    python benchmarks/peer_fit.py campaign/student_s28_net_4000.safetensors runs/student_s30/ema.safetensors
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from snapsr.eval.metrics import psnr, to_uint8_hwc
from snapsr.eval.peers import default_cache, load_peer
from snapsr.infer.imageio import list_files, read_rgb, to_tensor
from snapsr.model import weights


@click.command()
@click.argument("networks", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--lr", "lr_dir", default="data/tracks/degraded/lr", show_default=True, type=click.Path(exists=True))
@click.option("--hr", "hr_dir", default="data/tracks/degraded/hr", show_default=True, type=click.Path(exists=True))
@click.option("--realism", default="0,1", show_default=True, help="Comma-separated dial values.")
@click.option("--peer", default="realesrgan-x4plus", show_default=True)
@click.option("--dtype", type=click.Choice(["bf16", "fp32"]), default="bf16", show_default=True)
def main(networks, lr_dir, hr_dir, realism, peer, dtype):
    label, runner = load_peer(peer, default_cache())
    dials = [float(v) for v in realism.split(",")]
    images = []
    for path in list_files(Path(lr_dir)):
        lr = to_tensor(read_rgb(path)).unsqueeze(0)
        hr = read_rgb(Path(hr_dir) / path.name)
        images.append((lr, hr, to_uint8_hwc(runner.upscale_tensor(lr)[0].clamp(0, 1))))
    scale = runner.scale
    against_hr = np.mean([psnr(p, h, scale, True) for _, h, p in images])
    print(f"{len(images)} images; {label} against the HR: {against_hr:.2f} dB")
    print(f"| network | realism | PSNR-Y against {label} | against the HR |")
    print("|---|---:|---:|---:|")
    for net in networks:
        model, _ = weights.load_flow(net)
        model.eval()
        for t in dials:
            to_peer, to_hr = [], []
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=dtype == "bf16"):
                for k, (lr, hr, out_peer) in enumerate(images):
                    cond = model.condition(lr)
                    shape = (1, 3, lr.shape[2] * scale, lr.shape[3] * scale)
                    eps = torch.randn(shape, generator=torch.Generator().manual_seed(k))
                    out = model.one_step(model.start(cond, eps), torch.full((1,), t), cond)
                    out = to_uint8_hwc(out.float()[0].clamp(0, 1))
                    to_peer.append(psnr(out, out_peer, scale, True))
                    to_hr.append(psnr(out, hr, scale, True))
            print(f"| {net} | {t:g} | {np.mean(to_peer):.2f} | {np.mean(to_hr):.2f} |")


if __name__ == "__main__":
    main()
