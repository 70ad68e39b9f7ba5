"""How much of a network's output is its start noise passed through, per dial value.

A one-step student upscales from ``x_0 = a up(LR) + sigma_p eps``. Two different start noises give
two outputs; half their difference's RMS (in 8-bit levels) is the part of the output that depends
on the noise. Texture drawn from the noise would show here too, but so does noise the network fails
to cancel: with EDM's preconditioning a student at realism 1 must cancel twice the start noise
itself (``FlowConfig.one_step_precond``), and what it misses is grain. Session 28 found 3.3 levels
at realism 1 for dial-s11 and its flat crops' high band at 4.8 times the HR's; with the one-step
preconditioning both go (campaign/README.md):

    python benchmarks/start_noise.py snapsr/assets/weights/snapsr-x4-dial-s11.safetensors
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from snapsr.infer.imageio import list_files, read_rgb, to_tensor
from snapsr.model import weights


@click.command()
@click.argument("networks", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--lr", "lr_dir", default="data/tracks/degraded/lr", show_default=True, type=click.Path(exists=True))
@click.option("--images", default=12, show_default=True, help="The first N images of the folder.")
@click.option("--realism", default="0,0.5,0.75,1", show_default=True, help="Comma-separated dial values.")
def main(networks, lr_dir, images, realism):
    dials = [float(v) for v in realism.split(",")]
    lrs = [to_tensor(read_rgb(p)).unsqueeze(0) for p in list_files(Path(lr_dir))[:images]]
    print(f"| network | {' | '.join(f'realism {t:g}' for t in dials)} |")
    print("|---|" + "---:|" * len(dials))
    for net in networks:
        model, _ = weights.load_flow(net)
        model.eval()
        row = []
        for t in dials:
            levels = []
            for lr in lrs:
                with torch.no_grad():
                    cond = model.condition(lr)
                    outs = []
                    for seed in (1, 2):
                        eps = torch.randn(cond.shape, generator=torch.Generator().manual_seed(seed))
                        outs.append(model.one_step(model.start(cond, eps), torch.full((1,), t), cond).clamp(0, 1))
                levels.append(float((outs[0] - outs[1]).square().mean().sqrt()) / np.sqrt(2) * 255)
            row.append(f"{np.mean(levels):.2f}")
        print(f"| {net} | {' | '.join(row)} |")


if __name__ == "__main__":
    main()
