"""The ``snapsr`` command line: one entry point with subcommands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snapsr")
def main():
    """snapsr: one-step real-world image super-resolution with a fidelity-realism dial."""


# ---------------------------------------------------------------------------
# train


@main.group()
def train():
    """Train a model (teacher now; distilled students build on it)."""


@train.command("teacher", context_settings={"ignore_unknown_options": False})
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="TOML or JSON config.")
@click.option("--resume", is_flag=True, help="Continue from OUT_DIR/checkpoint.pt if it exists.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.argument("overrides", nargs=-1)
def train_teacher_cmd(config_path, resume, dry_run, device, overrides):
    """Train the flow-matching teacher. OVERRIDES are key=value, e.g. train.steps=1000 flow.backbone=lrnet_b."""
    from snapsr.config import TeacherRunConfig, load, to_dict

    try:
        cfg = load(TeacherRunConfig, config_path, overrides)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if dry_run:
        click.echo(json.dumps(to_dict(cfg), indent=2))
        return
    from snapsr.train.teacher import train_teacher

    res = train_teacher(cfg, resume=resume, device=device)
    if res.stopped_by_signal:
        sys.exit(130)


# ---------------------------------------------------------------------------
# degrade


@main.command()
@click.argument("hr_dir", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(), help="Writes OUTPUT/hr and OUTPUT/lr.")
@click.option("--scale", default=4, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--mode", default="realesrgan", show_default=True, type=click.Choice(["realesrgan", "bicubic"]))
@click.option("--max-size", default=0, type=int, help="Centre-crop HR images to at most this side (0: whole).")
def degrade(hr_dir, output, scale, seed, mode, max_size):
    """Write an LR/HR evaluation set from a folder of HR images (reproducible under --seed)."""
    import torch

    from snapsr.data import stream_seed
    from snapsr.degrade import DegradeConfig
    from snapsr.degrade import degrade as degrade_fn
    from snapsr.imageio import ImageReadError, list_files, read_rgb, save_png, to_tensor

    out = Path(output)
    (out / "hr").mkdir(parents=True, exist_ok=True)
    (out / "lr").mkdir(parents=True, exist_ok=True)
    cfg = DegradeConfig(mode=mode)
    failed = 0
    files = list_files(hr_dir)
    for path in files:
        try:
            img = read_rgb(path)
        except ImageReadError as e:
            click.echo(f"error: {e}", err=True)
            failed += 1
            continue
        h, w = img.shape[:2]
        if max_size:
            h2, w2 = min(h, max_size), min(w, max_size)
            y, x = (h - h2) // 2, (w - w2) // 2
            img, h, w = img[y : y + h2, x : x + w2], h2, w2
        img = img[: h - h % scale, : w - w % scale]
        hr = to_tensor(img).unsqueeze(0)
        # one stream per file name: the set does not change when other files come or go
        g = torch.Generator().manual_seed(stream_seed("degrade", seed, path.name))
        lr = degrade_fn(hr, scale, cfg, g)
        save_png(hr[0], out / "hr" / f"{path.stem}.png")
        save_png(lr[0], out / "lr" / f"{path.stem}.png")
    click.echo(f"wrote {len(files) - failed} LR/HR pairs to {out} ({failed} failed)")
    if failed:
        sys.exit(1)


# ---------------------------------------------------------------------------
# eval


@main.command("eval")
@click.option("--sr", "sr_dir", type=click.Path(exists=True, file_okay=False), help="Score existing outputs.")
@click.option("--hr", "hr_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--lr", "lr_dir", type=click.Path(exists=True, file_okay=False), help="Run --weights on these.")
@click.option("--weights", help="A .safetensors file to run on --lr.")
@click.option("--steps", default="1", show_default=True, help="Comma list of sampling step counts.")
@click.option("--sampler", default="euler", show_default=True, help="Comma list: euler, heun.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--scale", default=4, show_default=True, type=int, help="For bicubic when no weights are given.")
@click.option("--crop-border", default=None, type=int, help="Default: the scale.")
@click.option("--dtype", default="fp32", show_default=True, type=click.Choice(["fp32", "bf16"]))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Also write the results as JSON.")
def eval_cmd(sr_dir, hr_dir, lr_dir, weights, steps, sampler, seed, scale, crop_border, dtype, out_path):
    """PSNR/SSIM (RGB and Y) against HR, with bicubic alongside."""
    import torch

    from snapsr import evaluate
    from snapsr.data import stream_seed
    from snapsr.flow import upsample

    results = []
    if sr_dir:
        results.append(evaluate.score_dirs(Path(sr_dir), Path(hr_dir), crop_border or scale, "sr"))
    if lr_dir:
        model = None
        if weights:
            from snapsr.weights import load_flow

            model, _card = load_flow(weights)
            scale = model.cfg.scale
        cb = scale if crop_border is None else crop_border
        results.append(
            evaluate.score_model(
                lambda lr, name: upsample(lr, scale).clamp(0, 1), Path(lr_dir), Path(hr_dir), cb, "bicubic"
            )
        )
        if model is not None:
            amp = (
                torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else torch.autocast("cpu", enabled=False)
            )
            for smp in sampler.split(","):
                for n in (int(s) for s in steps.split(",")):

                    def run(lr, name, n=n, smp=smp):
                        g = torch.Generator().manual_seed(stream_seed("eval", seed, name))
                        with amp:
                            return model.sample(lr, steps=n, sampler=smp, generator=g).float().clamp(0, 1)

                    results.append(evaluate.score_model(run, Path(lr_dir), Path(hr_dir), cb, f"{smp} x{n}"))
    if not results:
        raise click.UsageError("give --sr DIR, or --lr DIR (with --weights to run a model)")
    click.echo(evaluate.format_table(results))
    if out_path:
        Path(out_path).write_text(
            json.dumps({r.method: {"mean": r.mean(), "per_image": r.per_image} for r in results}, indent=2)
        )


if __name__ == "__main__":
    main()
