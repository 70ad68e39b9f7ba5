"""Hostile and unlucky input (issue 13): every case gives a one-line error or a correct output,
never a traceback, and the rest of the batch is written."""

import io
import json
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from snapsr.cli import main
from tests.conftest import smooth_image


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    # a clean failure is SystemExit (click's one-line "Error: ..." or our exit 1), never an exception
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output
    return res


@pytest.fixture()
def up(tiny_weights):
    return ["--weights", tiny_weights, "--dtype", "fp32", "--device", "cpu", "-q"]


def good(folder, name="good.png", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_image(12, 16, seed)).save(folder / name)
    return folder / name


def errors(res) -> list[str]:
    return [line for line in res.output.splitlines() if line.startswith("error:")]


# 1. formats ------------------------------------------------------------------


def test_only_photographic_formats_are_decoded_and_never_by_name(tmp_path, up, monkeypatch):
    d = tmp_path / "in"
    good(d)
    (d / "page.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    (d / "layers.psd").write_bytes(b"8BPS\x00\x01" + bytes(40))
    Image.fromarray(smooth_image(16, 16, 1)).save(d / "icon.ico")
    Image.fromarray(smooth_image(12, 16, 2)).save(d / "renamed.txt", format="PNG")  # content decides
    import subprocess

    def no_ghostscript(*a, **k):
        raise AssertionError("a subprocess was started (Ghostscript?)")

    monkeypatch.setattr(subprocess, "Popen", no_ghostscript)
    res = run("upscale", d, "-o", tmp_path / "out", *up)
    assert res.exit_code == 1
    msgs = "\n".join(errors(res))
    assert "page.eps: a PostScript/EPS file, not an accepted format" in msgs
    assert "layers.psd: a Photoshop PSD file" in msgs and "icon.ico: a ICO file" in msgs
    assert len(errors(res)) == 3
    assert (tmp_path / "out" / "good_x4.png").is_file() and (tmp_path / "out" / "renamed_x4.png").is_file()


# 2. memory -------------------------------------------------------------------


def test_output_pixel_limit_is_checked_before_any_work(tmp_path, up):
    d = tmp_path / "in"
    good(d)
    res = run("upscale", d / "good.png", "-s", 2000, "-o", tmp_path / "out", *up)
    assert res.exit_code == 1 and "32000x24000 = 768 MP, over the limit of 400 MP" in res.output
    Image.fromarray(smooth_image(24, 32, 1)).save(d / "big.png")  # 128x96 = 12,288 output pixels
    res = run("upscale", d, "--max-output-pixels", 5000, "-o", tmp_path / "o2", *up)
    assert res.exit_code == 1 and len(errors(res)) == 1 and "big.png" in errors(res)[0]
    assert "--max-output-pixels" in res.output and (tmp_path / "o2" / "good_x4.png").is_file()


def test_a_memory_error_retries_with_smaller_tiles_then_fails_that_file_only(tmp_path, up, monkeypatch):
    from snapsr.infer.upscaler import Upscaler

    d = tmp_path / "in"
    good(d, "a.png")
    good(d, "b.png", 1)
    Image.fromarray(smooth_image(24, 32, 2)).save(d / "c.png")
    real = Upscaler.upscale_picture
    budgets = []

    def flaky(self, pic, **kw):
        budgets.append((pic.size, self.options.max_memory_mb))
        if pic.size == (16, 12) and self.options.max_memory_mb > 256:  # a.png and b.png: fit at 256 MB
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 6100000000 bytes")
        if pic.size == (32, 24):  # c.png never fits
            raise MemoryError()
        return real(self, pic, **kw)

    monkeypatch.setattr(Upscaler, "upscale_picture", flaky)
    res = run("upscale", d, "-o", tmp_path / "out", *up)
    assert res.exit_code == 1 and len(errors(res)) == 1 and "c.png" in errors(res)[0]
    assert "out of memory" in errors(res)[0]
    assert res.output.count("retrying with --max-memory 512") == 3 and "--max-memory 256" in res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x4.png", "b_x4.png"]
    assert [b for s, b in budgets if s == (16, 12)] == [1024, 512, 256, 1024, 512, 256]  # each file starts afresh


# 3-4. re-runs and clashes ------------------------------------------------------


def test_rerun_beside_inputs_never_upscales_its_own_outputs(tmp_path, up):
    d = tmp_path / "in"
    good(d, "a.png")
    Image.fromarray(smooth_image(12, 16, 3)).save(d / "b.jpg", quality=95)
    assert run("upscale", d, *up).exit_code == 0
    res = run("upscale", d, *up)
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in d.iterdir())
    assert names == ["a.png", "a_x4.png", "b.jpg", "b_x4.jpg"]
    res = run("upscale", d, "--json", *up)
    summary = json.loads(res.stdout)
    assert summary["written"] == 0 and summary["failed"] == 0 and summary["skipped"] == 4


def test_rerun_into_a_subfolder_of_the_input(tmp_path, up):
    d = tmp_path / "in"
    good(d / "sub", "a.png")
    for _ in range(3):
        res = run("upscale", d, "-r", "-o", d / "out", *up)
        assert res.exit_code == 0, res.output
    made = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert made == ["out/sub/a_x4.png", "sub/a.png"]


def test_name_clashes_fail_before_any_work(tmp_path, up):
    good(tmp_path / "d1", "a.png", 0)
    good(tmp_path / "d2", "a.png", 1)
    res = run("upscale", tmp_path / "d1" / "a.png", tmp_path / "d2" / "a.png", "-o", tmp_path / "out", *up)
    assert res.exit_code == 1
    assert len(errors(res)) == 1 and "d2/a.png: its output" in res.output and "d1/a.png's" in res.output
    good(tmp_path / "d3", "b.png", 2)
    Image.fromarray(smooth_image(12, 16, 4)).save(tmp_path / "d3" / "b.jpg")
    res = run("upscale", tmp_path / "d3", "--format", "png", "-o", tmp_path / "o3", *up)
    assert res.exit_code == 1 and "its output" in res.output
    assert [p.name for p in (tmp_path / "o3").iterdir()] == ["b_x4.png"]


def test_stale_temporary_files_are_cleaned_on_the_next_run(tmp_path, up):
    d = tmp_path / "in"
    good(d)
    out = tmp_path / "out"
    out.mkdir()
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    (out / f".good_x4.png.{dead}.tmp").write_bytes(b"half an image")
    (out / f".other.png.{os.getpid()}.tmp").write_bytes(b"a live writer's")
    assert run("upscale", d, "-o", out, *up).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [f".other.png.{os.getpid()}.tmp", "good_x4.png"]


# 5-6. weights and checkpoints --------------------------------------------------


def _with_card(src, dst, change):
    tensors = load_file(str(src))
    from snapsr.model.weights import read_card

    card = read_card(src)
    meta = change(card)
    dst.write_bytes(save_bytes(tensors, metadata={"snapsr": meta if isinstance(meta, str) else json.dumps(meta)}))
    return dst


CARDS = {
    "scale=1000": lambda c: {**c, "flow": {**c["flow"], "scale": 1000}},
    "scale=-4": lambda c: {**c, "flow": {**c["flow"], "scale": -4}},
    "prompt_dim": lambda c: {**c, "flow": {**c["flow"], "prompt_dim": 60000, "prompt": True}},
    "steps=1e9": lambda c: {**c, "default_steps": 10**9},
    "steps=float": lambda c: {**c, "default_steps": 2.5},
    "realism": lambda c: {**c, "default_realism": 7},
    "flow=7": lambda c: {**c, "flow": 7},
    "array": lambda c: [1, 2, 3],
    "backbone": lambda c: {**c, "flow": {**c["flow"], "backbone": "resnet9000"}},
    "malformed": lambda c: '{"flow": {',
}


@pytest.mark.parametrize("case", sorted(CARDS))
def test_a_weights_card_is_checked_before_anything_is_built(tmp_path, tiny_weights, case):
    good(tmp_path / "in")
    bad = _with_card(tiny_weights, tmp_path / "bad.safetensors", CARDS[case])
    res = run("upscale", tmp_path / "in", "--weights", bad, "-q")
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "bad.safetensors" in lines[0], res.output


def test_nan_weights_and_mismatched_tensors_are_refused(tmp_path, tiny_weights):
    good(tmp_path / "in")
    tensors = load_file(str(tiny_weights))
    meta = {"snapsr": json.dumps(__import__("snapsr.model.weights", fromlist=["x"]).read_card(tiny_weights))}
    k = next(iter(tensors))
    nan = {**tensors, k: torch.full_like(tensors[k], float("nan"))}
    (tmp_path / "nan.safetensors").write_bytes(save_bytes(nan, metadata=meta))
    short = {kk: v for kk, v in tensors.items() if kk != k}
    (tmp_path / "short.safetensors").write_bytes(save_bytes(short, metadata=meta))
    for name, words in (("nan", "NaN or Inf"), ("short", "do not match its config")):
        res = run("upscale", tmp_path / "in", "--weights", tmp_path / f"{name}.safetensors", "-q")
        assert res.exit_code == 1 and words in res.output and len(res.output.strip().splitlines()) == 1


def test_damaged_weights_files_are_one_line_errors(tmp_path, tiny_weights):
    good(tmp_path / "in")
    data = tiny_weights.read_bytes()
    files = {
        "pickle": pickle.dumps({"a": 1}),
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "huge_header": struct.pack("<Q", 2**62) + b"{}",
    }
    for name, blob in files.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(blob)
        res = run("upscale", tmp_path / "in", "--weights", p, "-q")
        assert res.exit_code == 1, name
        assert len(res.output.strip().splitlines()) == 1 and p.name in res.output, res.output


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_malicious_checkpoint_is_refused_without_running(tmp_path):
    from snapsr.train import checkpoint

    p = tmp_path / "checkpoint.pt"
    torch.save({"step": _Boom()}, p)
    with pytest.raises(ValueError, match="checkpoint.pt: not a readable snapsr checkpoint"):
        checkpoint.load(p)
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")
    p.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable"):
        checkpoint.load(p)


# 7-8. pixels -----------------------------------------------------------------


def _float_tiff(path, arr):
    Image.fromarray(arr.astype(np.float32), mode="F").save(path)


def test_nan_and_inf_pixels_are_repaired_with_a_warning_or_refused(tmp_path, up):
    d = tmp_path / "in"
    d.mkdir()
    base = smooth_image(12, 16, 0)[..., 1].astype(np.float32) / 255
    one_nan, one_inf = base.copy(), base.copy()
    one_nan[3, 4] = np.nan
    one_inf[5, 6] = np.inf
    _float_tiff(d / "clean.tif", base)
    _float_tiff(d / "nan.tif", one_nan)
    _float_tiff(d / "inf.tif", one_inf)
    _float_tiff(d / "allnan.tif", np.full((12, 16), np.nan))
    res = run("upscale", d, "-o", tmp_path / "out", *up)
    assert res.exit_code == 1
    assert "nan.tif: 1 NaN/Inf pixel value(s) replaced" in res.output
    assert "inf.tif: 1 NaN/Inf pixel value(s) replaced" in res.output
    assert "allnan.tif: no finite pixel values" in res.output and len(errors(res)) == 1
    means = {}
    for n in ("clean", "nan", "inf"):
        with Image.open(tmp_path / "out" / f"{n}_x4.tif") as im:
            means[n] = np.asarray(im).astype(float).mean()
    assert abs(means["nan"] - means["clean"]) < 0.01 * means["clean"]
    assert abs(means["inf"] - means["clean"]) < 0.01 * means["clean"]


def test_dark_images_keep_their_levels(tmp_path, up):
    import png

    img = smooth_image(16, 16, 0).astype(np.float64)
    dark = (img / 255 * 214).round().astype(np.uint16)
    d = tmp_path / "in"
    d.mkdir()
    png.Writer(16, 16, greyscale=False, bitdepth=16).write(open(d / "dark.png", "wb"), dark.reshape(16, -1).tolist())
    assert run("upscale", d, "-o", tmp_path / "out", *up).exit_code == 0
    import snapsr.infer.imageio as io_

    out = io_.read_image(tmp_path / "out" / "dark_x4.png")
    assert out.bits == 16 and out.pixels.max() * 65535 < 1.3 * dark.max()


def test_16bit_grey_with_alpha_stays_16bit_grey_with_alpha(tmp_path, up):
    import png

    d = tmp_path / "in"
    d.mkdir()
    g = smooth_image(12, 16, 0)[..., 0].astype(np.uint16) * 257
    a = np.full_like(g, 65535)
    a[:, :8] = 0
    png.Writer(16, 12, greyscale=True, alpha=True, bitdepth=16).write(
        open(d / "la.png", "wb"), np.dstack([g, a]).reshape(12, -1).tolist()
    )
    assert run("upscale", d, "-o", tmp_path / "out", *up).exit_code == 0
    w, h, rows, meta = png.Reader(filename=str(tmp_path / "out" / "la_x4.png")).asDirect()
    assert (w, h, meta["bitdepth"], meta["greyscale"], meta["alpha"]) == (64, 48, 16, True, True)


def test_orientation_matches_pillow_for_every_exif_value():
    from PIL import ImageOps

    from snapsr.infer.imageio import _apply_orientation

    a = (np.arange(3 * 5 * 3, dtype=np.uint8) * 3).reshape(3, 5, 3)
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG", exif=ex)
        with Image.open(buf) as im:
            ref = np.asarray(ImageOps.exif_transpose(im))
        assert np.array_equal(_apply_orientation(a, o), ref), o


def test_cmyk_profile_is_not_written_into_rgb_output(tmp_path, up):
    from PIL import ImageCms

    d = tmp_path / "in"
    d.mkdir()
    cmyk = Image.fromarray(smooth_image(12, 16, 0)).convert("CMYK")
    fake_cmyk_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()[:200] + b"CMYK"
    cmyk.save(d / "c.jpg", icc_profile=fake_cmyk_profile, quality=95)
    assert run("upscale", d, "-o", tmp_path / "out", *up).exit_code == 0
    with Image.open(tmp_path / "out" / "c_x4.jpg") as out:
        assert out.mode == "RGB" and out.info.get("icc_profile") in (None, b"")


# 9. eval pairing ---------------------------------------------------------------


def test_eval_pairs_strictly(tmp_path):
    def folder(name, files):
        d = tmp_path / name
        for rel, (h, w, seed) in files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(smooth_image(h, w, seed)).save(d / rel)
        return d

    sr = folder("sr", {"a.png": (32, 32, 0), "b.png": (32, 32, 1)})
    hr_missing = folder("hr1", {"a.png": (32, 32, 0)})
    res = run("eval", "--sr", sr, "--hr", hr_missing)
    assert res.exit_code == 1 and "1 file(s) in" in res.output and "b.png" in res.output
    hr_wrong = folder("hr2", {"a.png": (32, 32, 0), "b.png": (32, 32, 1), "0_old/a.png": (32, 32, 5)})
    res = run("eval", "--sr", sr, "--hr", hr_wrong)
    assert res.exit_code == 0, res.output  # the sub-folder's a.png is another picture, not a candidate
    hr_two = folder("hr3", {"a_x1.png": (32, 32, 0), "a-hr.png": (32, 32, 3), "b.png": (32, 32, 1)})
    res = run("eval", "--sr", sr, "--hr", hr_two)
    assert res.exit_code == 1 and "more than one possible reference" in res.output
    hr_size = folder("hr4", {"a.png": (36, 32, 0), "b.png": (32, 32, 1)})
    res = run("eval", "--sr", sr, "--hr", hr_size)
    assert res.exit_code == 1 and "differs from HR size" in res.output
    hr_text = folder("hr5", {"b.png": (32, 32, 1)})
    (hr_text / "a.png").write_text("not an image")
    res = run("eval", "--sr", sr, "--hr", hr_text)
    assert res.exit_code == 1 and "a.png" in res.output and len(res.output.strip().splitlines()) == 1


# 10. small ones ----------------------------------------------------------------


def test_symlink_loop_and_empty_folder(tmp_path, up):
    d = tmp_path / "in"
    good(d)
    os.symlink(d / "loop.png", d / "loop.png")
    for i, extra in enumerate(([], ["-r"])):
        res = run("upscale", d, "-o", tmp_path / f"out{i}", *extra, *up)
        assert (tmp_path / f"out{i}" / "good_x4.png").is_file()
        assert res.exit_code == 1 and len(errors(res)) == 1 and "loop.png" in errors(res)[0]
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(main, ["upscale", str(tmp_path / "empty"), *map(str, up)])
    assert res.exit_code == 0 and "warning:" in res.output and "no files in this folder" in res.output


def test_max_pixels_above_pillows_own_cap_is_honoured(tmp_path):
    from snapsr.infer.imageio import ImageReadError, _open

    def header_only_png(w, h):
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)

        def chunk(tag, body):
            return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")

    p = tmp_path / "big.png"
    p.write_bytes(header_only_png(20000, 10000))  # 200 MP: over Pillow's 179 MP hard limit
    with pytest.raises(ImageReadError, match="--max-pixels"):
        _open(p, 100_000_000)
    with _open(p, 300_000_000) as im:  # raised: Pillow follows it
        assert im.size == (20000, 10000)


def test_clip_torchscript_archives_are_read_without_running_their_code(tmp_path, monkeypatch):
    from snapsr.eval.iqa.clipiqa import load_clip_state_dict

    def never(*a, **k):
        raise AssertionError("torch.jit.load was called")

    monkeypatch.setattr(torch.jit, "load", never)
    payload = pickle.dumps(_Boom(), protocol=2)
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as z:
        z.writestr("evil/data.pkl", payload)
        z.writestr("evil/constants.pkl", pickle.dumps(()))
    with pytest.raises(ValueError, match="refusing"):
        load_clip_state_dict(tmp_path / "evil.pt")
    assert not os.path.exists("pwned")


# crashes the fuzz harness (test_fuzz.py) found, kept as tests --------------------

FUZZ_TIFF = (  # a float TIFF with its width tag cut: Pillow raised TypeError("Missing dimensions")
    b"II*\x00\x08\x00\x00\x00\n\x00\x00\x01\x04\x00\x01\x00\x00\x00\x04\x00\x00\x00\x01\x01\x04\x00\x01\x00\x00\x00"
    b"\x05\x00\x00\x00\x02\x01\x03\x00\x01\x00\x00\x00 \x00\x00\x00\x03\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00"
    b"\x06\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x11\x01\x04\x00\x01\x00\x00\x00\x86\x00\x00\x00\x16\x01\x04"
    b"\x00\x01\x00\x00\x00\x05\x00\x00\x00\x17\x01\x04\x00\x01\x00\x00\x00P\x00\x00\x00\x1c\x01\x03\x00\x01\x00\x00"
    b"\x00\x00\x00\x00S\x01\x03\x00\x01\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00" + bytes(80)
)


def test_fuzz_found_tiff_is_a_one_line_error(tmp_path):
    from snapsr.infer.imageio import ImageReadError, read_image

    (tmp_path / "f.tif").write_bytes(FUZZ_TIFF)
    with pytest.raises(ImageReadError, match="f.tif: not a readable image"):
        read_image(tmp_path / "f.tif")


@pytest.mark.parametrize("change", [{"sigma_p": 1.2}, {"scale": float("inf")}, {"prompt_tokens": 2**70}])
def test_fuzz_found_cards_are_one_line_errors(tmp_path, tiny_weights, change):
    from snapsr.model.weights import load_flow

    bad = _with_card(tiny_weights, tmp_path / "bad.safetensors", lambda c: {**c, "flow": {**c["flow"], **change}})
    with pytest.raises(ValueError, match="bad.safetensors"):
        load_flow(bad)


# 2 (continued). streaming: any output size in bounded memory -------------------


@pytest.mark.parametrize("kind", ["rgb.png", "grey.png", "rgba.png", "deep.png", "rgb.jpg", "deep.tif"])
def test_streamed_output_equals_the_whole_image_output(tmp_path, tiny_weights, kind):
    from snapsr.infer import batch
    from snapsr.infer.imageio import read_image
    from snapsr.infer.upscaler import Upscaler

    d = tmp_path / "in"
    d.mkdir()
    img = smooth_image(37, 53, 0)
    name = kind
    if kind.startswith("grey"):
        Image.fromarray(img[..., 0]).save(d / name)
    elif kind.startswith("rgba"):
        a = np.full(img.shape[:2], 255, np.uint8)
        a[:, :20] = 40
        Image.fromarray(np.dstack([img, a])).save(d / name)
    elif kind.startswith("deep"):
        import tifffile

        deep = img.astype(np.uint16) * 257
        if kind.endswith(".png"):
            import png

            png.Writer(53, 37, greyscale=False, bitdepth=16).write(open(d / name, "wb"), deep.reshape(37, -1).tolist())
        else:
            tifffile.imwrite(d / name, deep, photometric="rgb")
    else:
        Image.fromarray(img).save(d / name, quality=95)
    up = Upscaler.from_pretrained(str(tiny_weights), tile=16, tile_overlap=6)
    rmap = torch.linspace(0, 1, 53).repeat(37, 1)
    jobs, _ = batch.collect([str(d)], str(tmp_path / "whole"), False)
    dial = up.realism(realism_map=rmap)
    whole = batch.run(up, jobs, batch.BatchOptions(realism=dial), progress=False, log=lambda m: None)
    jobs, _ = batch.collect([str(d)], str(tmp_path / "stream"), False)
    options = batch.BatchOptions(realism=dial, stream_above=0)
    streamed = batch.run(up, jobs, options, progress=False, log=lambda m: None)
    assert whole.count("written") == streamed.count("written") == 1
    out = next((tmp_path / "whole").iterdir()).name
    a, b = read_image(tmp_path / "whole" / out), read_image(tmp_path / "stream" / out)
    assert a.bits == b.bits and a.pixels.shape == b.pixels.shape == (148, 212, a.pixels.shape[-1])
    assert (a.alpha is None) == (b.alpha is None)
    # the map is kept in 8 bits when streaming: at most one level apart, almost everywhere equal
    diff = np.abs(a.pixels - b.pixels) * 255  # in 8-bit levels
    if kind.endswith(".jpg"):  # JPEG's DCT blocks spread a one-level change a little
        assert diff.mean() < 0.5 and diff.max() <= 16, (diff.mean(), diff.max())
        return
    assert diff.max() <= 2, diff.max()
    if a.bits == 8:
        assert (diff > 0).mean() < 0.05
    if a.alpha is not None:
        assert np.array_equal(a.alpha, b.alpha)


def test_streamed_rows_equal_the_whole_image_to_the_bit(tiny_weights):
    from snapsr.infer.upscaler import Upscaler

    up = Upscaler.from_pretrained(str(tiny_weights), tile=16, tile_overlap=6)
    lr = torch.from_numpy(smooth_image(45, 38, 1)).permute(2, 0, 1)[None].float() / 255
    whole = up.upscale_tensor(lr, realism=0.7, seed=3)
    rows = torch.cat([r for _, r in up.upscale_rows(lr, realism=0.7, seed=3)], 2)
    assert torch.equal(whole, rows)


def test_small_cli_mistakes_are_usage_errors(tmp_path, up, tiny_weights):
    d = tmp_path / "in"
    good(d)
    (tmp_path / "map.png").write_bytes((d / "good.png").read_bytes())
    res = run("upscale", d, "--realism", "0.5", "--realism-map", tmp_path / "map.png", *up)
    assert res.exit_code == 2 and "not both" in res.output
    res = run("eval", "--lr", d, "--hr", d, "--realism", "0.5")
    assert res.exit_code == 2 and "give --weights too" in res.output
    res = run("eval", "--lr", d, "--hr", d, "--weights", tiny_weights, "--sampler", "dpm")
    assert res.exit_code == 1 and "unknown sampler 'dpm'" in res.output
    res = CliRunner().invoke(main, ["--help"], prog_name="snapsr")
    assert "Usage: snapsr" in res.output
