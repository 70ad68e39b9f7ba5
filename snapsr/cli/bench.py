"""``snapsr bench``: seconds per LR megapixel beside bicubic and Real-ESRGAN x4plus; with ``--command``,
the whole ``snapsr upscale`` command as a user runs it, beside Real-ESRGAN x4plus and the bare import."""

from __future__ import annotations

import click


@click.command()
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
@click.option(
    "--command",
    "commands",
    multiple=True,
    type=click.Choice(["two", "small", "large"]),
    help="Instead of the network: time the whole `snapsr upscale` command, each run a fresh process, beside "
    "Real-ESRGAN x4plus and `import torch` (two: two 512x384 photos; small: fourteen 128x128 crops; "
    "large: one 1536x1024 photo). Repeatable.",
)
@click.option(
    "--photos",
    type=click.Path(file_okay=False),
    default=None,
    help="With --command: crop the photos from the first two images here (default: the bundled example).",
)
@click.option(
    "--also",
    multiple=True,
    help="With --command: more weights (e.g. snapsr-x4-fast-s1) timed as more rows of the same run. Repeatable.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the results here.")
def bench(
    weights, lr_size, repeats, steps, device, dtype, tile, no_baselines, memory, onnx, commands, photos, also, json_path
):
    """Seconds per LR megapixel (median after warm-up) beside bicubic and Real-ESRGAN x4plus."""
    from snapsr.eval import bench as bench_mod

    if also and not commands:
        raise click.UsageError("--also times more weights with --command; give --command too")
    if commands:
        if memory or onnx:
            raise click.UsageError("--command times whole commands; run --memory and --onnx without it")
        from pathlib import Path

        from snapsr.eval import command_speed as cs

        extra = ("--device", device, "--dtype", dtype) + (("--tile", str(tile)) if tile else ())
        extra += ("--steps", str(steps)) if steps else ()
        results = []
        for case in commands:
            try:
                r = cs.command_speed(
                    case,
                    Path(photos) if photos else None,
                    repeats=repeats,
                    weights=weights,
                    extra_args=extra,
                    peer=not no_baselines,
                    also=tuple(also),
                )
            except RuntimeError as e:
                raise click.ClickException(str(e)) from None
            click.echo(cs.format_result(r) + "\n")
            results.append(r)
        if json_path:
            bench_mod.dump({"commands": results}, json_path)
        return

    from snapsr.infer.upscaler import Upscaler

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
