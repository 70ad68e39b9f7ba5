import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from snapsr import Upscaler
from snapsr.eval.metrics import psnr

from .conftest import smooth_image


def test_api_kinds_round_trip(tiny_weights):
    up = Upscaler.from_pretrained(tiny_weights)
    assert up.scale == 4 and up.steps == 2
    rgb = smooth_image(12, 10, 0)
    out = up.up(Image.fromarray(rgb))
    assert isinstance(out, Image.Image) and out.size == (40, 48) and out.mode == "RGB"
    assert up.up(Image.fromarray(rgb[..., 0])).mode == "L"
    rgba = up.up(Image.fromarray(np.dstack([rgb, np.full((12, 10), 128, np.uint8)])))
    assert rgba.mode == "RGBA" and abs(np.asarray(rgba)[..., 3].astype(int) - 128).max() <= 1
    a8 = up.up(rgb)
    assert a8.dtype == np.uint8 and a8.shape == (48, 40, 3)
    a16 = up.up(rgb.astype(np.uint16) * 257)
    assert a16.dtype == np.uint16 and a16.shape == (48, 40, 3)
    assert np.abs(a16.astype(np.int64) // 257 - a8).max() <= 2
    f = up.up(rgb.astype(np.float32) / 255)
    assert f.dtype == np.float32 and 0 <= f.min() and f.max() <= 1
    grey = up.up(rgb[..., 0])
    assert grey.shape == (48, 40)
    t = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    tt = up.up(t)
    assert isinstance(tt, torch.Tensor) and tt.shape == (3, 48, 40)
    assert torch.allclose(tt, torch.from_numpy(f).permute(2, 0, 1), atol=1e-5)
    assert up.up(t.unsqueeze(0)).shape == (1, 3, 48, 40)
    with pytest.raises(TypeError):
        up.up([1, 2, 3])
    with pytest.raises(ValueError):
        up.up(t, realism=1.5)


def test_realism_dial_and_map(tiny_weights):
    up = Upscaler.from_pretrained(tiny_weights, steps=3)
    x = torch.rand(1, 3, 16, 16)
    r0, r1 = up.upscale_tensor(x, realism=0.0), up.upscale_tensor(x, realism=1.0)
    assert (r0 - r1).abs().mean() > 1e-3
    half = up.upscale_tensor(x, realism=0.5)
    inside = (r0 > 0.01) & (r0 < 0.99) & (r1 > 0.01) & (r1 < 0.99)  # where clamping did not act
    assert inside.float().mean() > 0.5
    assert torch.allclose(half[inside], ((r0 + r1) / 2)[inside], atol=1e-4)
    m = torch.zeros(64, 64)
    m[:, 32:] = 1.0
    mixed = up.upscale_tensor(x, realism_map=m)
    assert torch.allclose(mixed[..., :, :28], r0[..., :, :28], atol=1e-4)
    assert torch.allclose(mixed[..., :, 36:], r1[..., :, 36:], atol=1e-4)
    # the same seed gives the same output; another seed another one
    assert torch.equal(up.upscale_tensor(x, realism=1.0, seed=1), up.upscale_tensor(x, realism=1.0, seed=1))
    assert not torch.equal(up.upscale_tensor(x, realism=1.0, seed=1), up.upscale_tensor(x, realism=1.0, seed=2))


def test_float_scale_and_colorfix(tiny_weights):
    up = Upscaler.from_pretrained(tiny_weights)
    x = torch.rand(1, 3, 10, 20)
    assert up.upscale_tensor(x, scale=2.5).shape == (1, 3, 25, 50)
    assert up.upscale_tensor(x, scale=8).shape == (1, 3, 80, 160)
    for cf in ("wavelet", "adain"):
        out = up.with_options(colorfix=cf).upscale_tensor(x)
        assert out.shape == (1, 3, 40, 80) and 0 <= out.min() and out.max() <= 1
    ref = up.model.condition(x)
    fixed = up.with_options(colorfix="adain").upscale_tensor(x)
    assert (fixed.mean((-2, -1)) - ref.mean((-2, -1))).abs().max() < 0.02


def test_bf16_close_to_fp32(tiny_weights):
    x = torch.from_numpy(smooth_image(32, 32, 4)).permute(2, 0, 1).unsqueeze(0).float() / 255
    a = Upscaler.from_pretrained(tiny_weights, dtype="fp32").upscale_tensor(x, realism=0.5)
    b = Upscaler.from_pretrained(tiny_weights, dtype="bf16").upscale_tensor(x, realism=0.5)
    to8 = lambda t: (t[0].permute(1, 2, 0).numpy() * 255).round()  # noqa: E731
    assert psnr(to8(b), to8(a)) > 38


def test_import_touches_neither_cuda_nor_network():
    code = (
        "import socket\n"
        "def no(*a, **k): raise RuntimeError('network touched')\n"
        "socket.socket.connect = no; socket.create_connection = no\n"
        "import snapsr\n"
        "from snapsr import Upscaler\n"
        "import torch\n"
        "assert not torch.cuda.is_initialized()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_bad_weights_are_clear_errors(tmp_path, tiny_weights):
    with pytest.raises(FileNotFoundError, match="no bundled weights named"):
        Upscaler.from_pretrained("no-such-model")
    with pytest.raises(FileNotFoundError, match="not found"):
        Upscaler.from_pretrained(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="fp16"):
        Upscaler.from_pretrained(tiny_weights, dtype="fp16", device="cpu")


def test_bundled_default_bf16_close_to_fp32():
    """--dtype auto picks bf16 on AMX CPUs: on every shipped model it must stay close to fp32."""
    from pathlib import Path

    from snapsr.infer.imageio import read_rgb
    from snapsr.model import pretrained

    img = read_rgb(Path(__file__).parents[1] / "snapsr" / "assets" / "example.jpg")[:64, :96]
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255
    to8 = lambda t: (t[0].permute(1, 2, 0).numpy() * 255).round()  # noqa: E731
    assert pretrained.DEFAULT in pretrained.available()
    for name in pretrained.available():
        for realism in (0.0, 0.5, 1.0):
            a = Upscaler.from_pretrained(name, dtype="fp32").upscale_tensor(x, realism=realism)
            b = Upscaler.from_pretrained(name, dtype="bf16").upscale_tensor(x, realism=realism)
            assert psnr(to8(b), to8(a)) > 40, (name, realism)


def test_api_pil_16bit_grey_stays_16bit(tiny_weights):
    up = Upscaler.from_pretrained(tiny_weights)
    a16 = (smooth_image(10, 12, 3)[..., 0].astype(np.uint16) * 257) + 7
    out = up.up(Image.fromarray(a16))
    assert out.mode in ("I;16", "I") and out.size == (48, 40)
    arr = np.asarray(out)
    assert arr.max() > 255 and np.any(arr % 257 != 0)  # more than 8 bits of levels survive


def test_realism_is_checked_once_into_one_value(tiny_weights):
    from snapsr.infer.realism import Realism

    up = Upscaler.from_pretrained(str(tiny_weights))
    assert up.realism().value == up.default_realism and up.realism("0.25").value == 0.25
    assert up.realism(1).label == "1" and up.realism(realism_map=torch.zeros(4, 4)).label == "map"
    for bad in (1.5, -0.1, float("nan"), "loud", [0.5]):
        with pytest.raises(ValueError, match="realism must be"):
            up.realism(bad)
    with pytest.raises(ValueError, match="not both"):
        up.upscale_tensor(torch.rand(1, 3, 8, 8), realism=0.5, realism_map=torch.zeros(8, 8))
    with pytest.raises(ValueError, match="estimator"):
        Realism.parse("auto", estimator=False)
    with pytest.raises(ValueError, match="NaN"):
        Realism.parse(realism_map=torch.full((3, 3), float("nan")))
    m = Realism.parse(realism_map=np.array([[0, 255]], np.uint8)).at_size(2, 4)
    assert m.map.shape == (1, 1, 2, 4) and m.map.min() == 0 and m.map.max() == 1
    assert torch.equal(m.for_tile(0, 2, 2, 2, None, "cpu"), m.map[..., :, 2:4])


def test_samplers_report_what_each_step_knew_and_the_teacher_dial_uses_it():
    from snapsr.model.config import FlowConfig
    from snapsr.model.flow import FlowSR
    from snapsr.model.samplers import SAMPLERS, time_grid
    from tests.conftest import perturbed

    m = perturbed(FlowConfig(scale=2, backbone="lrnet_t"), 1).eval()
    cond = torch.rand(1, 3, 12, 12)
    x_0 = m.start(cond, torch.randn_like(cond))
    with torch.no_grad():
        mean = m.one_step(x_0, 0.0, cond)
        for name, sampler in SAMPLERS.items():
            seen = []
            out = sampler(m.velocity, x_0, time_grid(3), cond=cond, callback=seen.append)
            assert [d["i"] for d in seen] == [0, 1, 2] and torch.equal(seen[-1]["x_next"], out)
            assert torch.allclose(seen[0]["denoised"], mean, atol=1e-6), name  # x_0 + (1 - 0) v(x_0, 0)
            half = m.at_realism(x_0, 0.5, cond, one_step=False, steps=3, sampler=name)
            assert torch.allclose(half, (mean + out) / 2, atol=1e-5)
        assert torch.equal(m.at_realism(x_0, 0.7, cond, one_step=True), m.one_step(x_0, 0.7, cond))
        assert isinstance(m, FlowSR)


def test_temperature_scales_the_start_noise_and_nothing_else():
    """``temperature`` is exactly ``x_0 = start(up(LR), tau * eps)``; below 1 the realistic end of the
    bundled default loses grain (its finest band), at 1 nothing changes; bad values are one-line errors."""
    from snapsr.infer import tiling

    img = smooth_image(40, 48, 3)
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255
    up = Upscaler.from_pretrained(dtype="fp32")
    m = up.model
    cond = m.condition(x)
    eps = tiling.position_noise(0, 3, 0, 0, *cond.shape[-2:])
    for tau in (0.0, 0.7):
        with torch.no_grad():
            want = m.at_realism(m.start(cond, tau * eps), 1.0, cond, one_step=True).clamp(0, 1)
        got = up.with_options(temperature=tau).upscale_tensor(x, realism=1.0)
        assert torch.allclose(got, want, atol=1e-5), tau
    same = up.with_options(temperature=1.0).upscale_tensor(x, realism=1.0)
    assert torch.equal(same, up.upscale_tensor(x, realism=1.0))

    def fine(t):  # energy of the finest band: the output minus its 3x3 box blur
        return (t - torch.nn.functional.avg_pool2d(t, 3, 1, 1, count_include_pad=False)).square().mean().item()

    grain = [fine(up.with_options(temperature=tau).upscale_tensor(x, realism=1.0)) for tau in (1.0, 0.7, 0.5)]
    assert grain[0] > grain[1] > grain[2], grain
    for bad in (-0.1, 2.5, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="temperature must be a number in"):
            up.with_options(temperature=bad)
