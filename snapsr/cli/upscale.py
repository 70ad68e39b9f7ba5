"""``snapsr upscale``: files, folders and globs, through ``infer.batch``."""

from __future__ import annotations

import json
import sys

import click


@click.command()
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
@click.option(
    "--temperature",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 2),
    help="Start-noise scale: below 1 (0.7) less grain at high realism; 1 as trained.",
)
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
    temperature,
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
    snapsr upscale photo.jpg --realism 1 --temperature 0.7
    """
    from snapsr import runtime

    runtime.tune_memory(largest_input(inputs, recursive))  # huge pages or heap reuse, before torch is imported
    runtime.exit_quickly()  # outputs are atomic and nothing here needs a clean shutdown

    from snapsr.infer import batch
    from snapsr.infer.upscaler import Upscaler

    if realism is not None and realism_map:
        raise click.UsageError("give --realism (one value or auto) or --realism-map (a value per pixel), not both")
    rmap = None
    if realism_map:
        from snapsr.infer.imageio import ImageReadError, read_image

        try:
            rmap = read_image(realism_map).pixels
        except ImageReadError as e:
            raise click.BadParameter(str(e), param_hint="--realism-map") from e
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
            temperature=temperature,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    try:
        options = batch.BatchOptions(
            realism=up.realism(realism, rmap),  # the dial, checked once
            seed=seed,
            scale=scale,
            fmt=fmt,
            quality=quality,
            template=template,
            overwrite=overwrite,
            overwrite_inputs=overwrite_inputs,
            max_pixels=max_pixels,
            max_output_pixels=max_output_pixels,
        )
    except ValueError as e:
        hint = "--realism-map" if rmap is not None else "--realism" if "realism" in str(e) else "--scale"
        raise click.BadParameter(str(e), param_hint=hint) from e
    jobs, missing = batch.collect(list(inputs), output, recursive)
    for m in missing:
        click.echo(f"{'warning' if m.status == 'empty' else 'error'}: {m.src}: {m.message}", err=True)
    summary = batch.run(up, jobs, options, progress=not quiet and sys.stderr.isatty())
    summary.outcomes = missing + summary.outcomes
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    if not quiet:
        click.echo(summary.line(), err=True)
    if summary.count("failed"):
        sys.exit(1)


def largest_input(inputs, recursive: bool, probe: int = 64) -> int | None:
    """The most pixels of any image named by ``inputs`` (files, folders, globs), read from their
    headers without importing torch; unreadable files count 0; None when there are more than
    ``probe`` files (the size of the job is not known)."""
    import warnings

    from PIL import Image

    from snapsr.infer.imageio import expand_input

    def paths():  # as infer.batch.collect expands them
        for item in inputs:
            yield from expand_input(item, recursive)[1]

    most = 0
    with warnings.catch_warnings():  # a decompression-bomb warning is for the reader to give, later
        warnings.simplefilter("ignore")
        try:
            for i, p in enumerate(paths()):
                if i >= probe:
                    return None
                try:
                    with Image.open(p) as im:
                        most = max(most, im.width * im.height)
                except (OSError, ValueError, Image.DecompressionBombError):
                    continue
        except OSError:  # an unreadable folder: the batch reports it
            pass
    return most
