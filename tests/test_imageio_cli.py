"""Every kind of image a user may throw at ``snapsr upscale``, through the real CLI."""

import io
import json
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image, ImageCms

from snapsr.cli import main
from snapsr.infer import imageio, imagewrite

from .conftest import smooth_image

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res


@pytest.fixture()
def up_args(tiny_weights):
    return ["--weights", tiny_weights, "--dtype", "fp32", "--device", "cpu", "-q"]


def test_exif_orientation_and_metadata(tmp_path, up_args):
    img = Image.fromarray(smooth_image(8, 16, 0))  # 16 wide, 8 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    exif[0x010F] = "snapsr-test-camera"
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes(), icc_profile=SRGB, dpi=(300, 300), quality=95)
    pic = imageio.read_image(tmp_path / "rot.jpg")
    assert pic.size == (8, 16)  # upright
    assert cli("upscale", tmp_path / "rot.jpg", "-o", tmp_path / "out", *up_args).exit_code == 0
    with Image.open(tmp_path / "out" / "rot_x4.jpg") as out:
        assert out.size == (32, 64)
        assert out.info.get("icc_profile") == SRGB
        ex = out.getexif()
        assert ex.get(0x010F) == "snapsr-test-camera" and ex.get(0x0112, 1) == 1
        assert tuple(round(v) for v in out.info["dpi"]) == (300, 300)


def test_alpha_grey_palette_cmyk(tmp_path, up_args):
    d = tmp_path / "in"
    d.mkdir()
    rgb = smooth_image(10, 12, 1)
    alpha = np.zeros((10, 12), np.uint8)
    alpha[:, 6:] = 255
    Image.fromarray(np.dstack([rgb, alpha])).save(d / "a.png")
    Image.fromarray(rgb[..., 1]).save(d / "g.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(d / "p.png")
    pt = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pt.info["transparency"] = 0
    pt.save(d / "pt.png", transparency=0)
    Image.fromarray(rgb).convert("CMYK").save(d / "c.jpg", quality=95)
    res = cli("upscale", d, "-o", tmp_path / "out", *up_args)
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    with Image.open(out / "a_x4.png") as a:
        assert a.mode == "RGBA" and a.size == (48, 40)
        al = np.asarray(a)[..., 3]
        assert al[:, :20].max() == 0 and al[:, 28:].min() == 255
    with Image.open(out / "g_x4.png") as g:
        assert g.mode == "L"
    with Image.open(out / "p_x4.png") as p:
        assert p.mode == "RGB"
    with Image.open(out / "pt_x4.png") as p:
        assert p.mode == "RGBA"
    with Image.open(out / "c_x4.jpg") as c:
        assert c.mode == "RGB"
        small = np.asarray(c.resize((12, 10), Image.Resampling.BOX)).astype(float)
        assert np.abs(small - rgb).mean() < 20  # colours survive the CMYK round trip


def test_16bit_in_16bit_out(tmp_path, up_args):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    rgb16 = (smooth_image(6, 8, 2).astype(np.uint16) * 257 + rng.integers(0, 200, (6, 8, 3))).astype(np.uint16)
    with open(d / "c16.png", "wb") as f:
        png.Writer(8, 6, greyscale=False, bitdepth=16).write(f, rgb16.reshape(6, -1).tolist())
    Image.fromarray(rgb16[..., 0]).save(d / "g16.png")
    tifffile.imwrite(d / "t16.tif", rgb16, photometric="rgb")
    pic = imageio.read_image(d / "c16.png")
    assert pic.bits == 16 and np.abs(pic.pixels * 65535 - rgb16).max() < 0.5
    res = cli("upscale", d, "-o", tmp_path / "out", *up_args)
    assert res.exit_code == 0, res.output
    w, h, rows, meta = png.Reader(filename=str(tmp_path / "out" / "c16_x4.png")).asDirect()
    assert (w, h, meta["bitdepth"], meta["planes"]) == (32, 24, 16, 3)
    with Image.open(tmp_path / "out" / "g16_x4.png") as g:
        assert g.mode in ("I;16", "I") and g.size == (32, 24)
    t = tifffile.imread(tmp_path / "out" / "t16_x4.tif")
    assert t.dtype == np.uint16 and t.shape == (24, 32, 3)
    # 16-bit output keeps more than 8 bits of levels
    assert len(np.unique(t)) > 256 or np.any(t % 257 != 0)


def test_animated_first_frame_with_warning(tmp_path, up_args):
    frames = [Image.fromarray(smooth_image(8, 8, i)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    res = cli("upscale", tmp_path / "anim.gif", "-o", tmp_path / "out", *up_args[:-1])
    assert res.exit_code == 0
    assert "3 frames; upscaling the first only" in res.output
    assert (tmp_path / "out" / "anim_x4.gif").exists() is False and (tmp_path / "out" / "anim_x4.png").exists()


def test_bad_files_reported_by_name_and_batch_goes_on(tmp_path, up_args):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(smooth_image(8, 8, 0)).save(d / "good1.png")
    Image.fromarray(smooth_image(8, 8, 1)).save(d / "good2.jpg")
    buf = io.BytesIO()
    Image.fromarray(smooth_image(64, 64, 2)).save(buf, "PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.png").write_text("hello, I am not a picture")
    res = cli("upscale", d, "-o", tmp_path / "out", "--json", *up_args[:-1])
    assert res.exit_code == 1
    for bad in ("truncated.png", "empty.jpg", "text.png"):
        assert sum(bad in line and "error" in line for line in res.output.splitlines()) == 1, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good1_x4.png", "good2_x4.jpg"]
    js = json.loads(res.output[res.output.index("{") : res.output.rindex("}") + 1])
    assert js["written"] == 2 and js["failed"] == 3
    assert "2 written, 0 skipped (output exists), 3 failed" in res.output


def test_decompression_bomb_limit(tmp_path, up_args):
    Image.fromarray(smooth_image(20, 30, 0)).save(tmp_path / "big.png")
    res = cli("upscale", tmp_path / "big.png", "-o", tmp_path / "o", "--max-pixels", 100, *up_args)
    assert res.exit_code == 1 and "big.png" in res.output and "--max-pixels" in res.output
    assert cli("upscale", tmp_path / "big.png", "-o", tmp_path / "o", "--max-pixels", 1000, *up_args).exit_code == 0


def test_skip_existing_overwrite_mirror_glob(tmp_path, up_args):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(smooth_image(6, 6, 0)).save(d / "x.png")
    Image.fromarray(smooth_image(6, 6, 1)).save(d / "sub" / "y.webp")
    out = tmp_path / "out"
    assert cli("upscale", d, "-r", "-o", out, *up_args).exit_code == 0
    assert (out / "x_x4.png").exists() and (out / "sub" / "y_x4.webp").exists()
    stamp = (out / "x_x4.png").stat().st_mtime_ns
    res = cli("upscale", d, "-r", "-o", out, *up_args[:-1])
    assert "0 written, 2 skipped" in res.output and (out / "x_x4.png").stat().st_mtime_ns == stamp
    assert "1 written" in cli("upscale", str(d / "*.png"), "-o", out, "--overwrite", *up_args[:-1]).output
    # beside the input when no -o, and never over the input itself
    assert cli("upscale", d / "x.png", *up_args).exit_code == 0 and (d / "x_x4.png").exists()
    before = (d / "x.png").read_bytes()
    res = cli("upscale", d / "x.png", "--name", "{stem}.{ext}", "--overwrite", *up_args[:-1])
    assert res.exit_code == 1 and "overwrite an input" in res.output and (d / "x.png").read_bytes() == before
    assert cli("upscale", tmp_path / "nope.png", *up_args).exit_code == 1


def test_formats_scale_and_realism_map(tmp_path, up_args):
    Image.fromarray(smooth_image(10, 10, 0)).save(tmp_path / "i.png")
    Image.fromarray(np.full((5, 5), 255, np.uint8)).save(tmp_path / "map.png")
    for fmt, ext in (("jpg", "jpg"), ("webp", "webp"), ("tiff", "tif"), ("png", "png")):
        res = cli("upscale", tmp_path / "i.png", "-o", tmp_path / fmt, "--format", fmt, "--quality", 80, *up_args)
        assert res.exit_code == 0 and (tmp_path / fmt / f"i_x4.{ext}").exists()
    res = cli(
        "upscale",
        tmp_path / "i.png",
        "-o",
        tmp_path / "s",
        "-s",
        2.5,
        "--realism-map",
        tmp_path / "map.png",
        "--steps",
        3,
        "--colorfix",
        "wavelet",
        "--tile",
        8,
        *up_args,
    )
    assert res.exit_code == 0
    with Image.open(tmp_path / "s" / "i_x2.5.png") as im:
        assert im.size == (25, 25)
    assert cli("upscale", tmp_path / "i.png", "--realism", "1.5", *up_args).exit_code == 2
    # the start noise's scale: another output at 0.5 than at 1 (the default), and a range
    for tau in ("default", "1", "0.5"):
        flag = [] if tau == "default" else ["--temperature", tau]
        res = cli("upscale", tmp_path / "i.png", "-o", tmp_path / f"t{tau}", *flag, "--realism", 1, *up_args)
        assert res.exit_code == 0, res.output
    default, t1, t05 = (np.asarray(Image.open(tmp_path / f"t{tau}" / "i_x4.png")) for tau in ("default", "1", "0.5"))
    assert np.array_equal(default, t1) and not np.array_equal(t1, t05)
    assert cli("upscale", tmp_path / "i.png", "--temperature", "2.5", *up_args).exit_code == 2


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    pic = imageio.Picture(np.zeros((4, 4, 3), np.float32))

    def boom(f, *a, **k):
        f.write(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(imagewrite, "_encode", boom)
    with pytest.raises(OSError):
        imagewrite.write_image(tmp_path / "o.png", pic, "PNG")
    assert list(tmp_path.iterdir()) == []


def test_models_lists_cards():
    res = cli("models", "--json")
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info["default"] in info["models"]
    card = info["models"][info["default"]]
    assert len(card["sha256"]) == 64 and card["flow"]["scale"] == 4 and "metrics" in card
    # the text form says what auto does with the default: its range as the card's estimator was trained
    text = cli("models").output.split(info["default"] + " (default)\n")[1].split("\nsnapsr-")[0]
    lo, hi = card["rcod"]["auto_range"]
    assert card["rcod"]["auto_targets"] == "ends" and f"about {lo:.2g} (clean input) to {hi:.2g}" in text
    assert f"smoothed over {card['flow']['estimator_smooth']} cells" in text
    # a tier says when to pick it, and how deep its trunk is where that differs from its backbone's own
    fast = cli("models").output.split("snapsr-x4-fast-s1\n")[1].split("\nsnapsr-")[0]
    assert "  use: the fast tier" in fast and 'backbone_args: {"blocks": 6}' in fast
    # the default (8 blocks since dial-s11) prints its trunk's depth as any cut network does; it needs no use line
    args = card["flow"].get("backbone_args")
    assert (f"backbone_args: {json.dumps(args)}" in text) if args else ("backbone_args" not in text)
    assert "use:" not in text


def test_models_says_what_auto_does_for_each_kind_of_target():
    from snapsr.cli.models import _auto

    card = {
        "flow": {"estimator": True, "estimator_smooth": 5},
        "rcod": {"auto_targets": "matched", "auto_range": [0.0, 1.0]},
    }
    text = _auto(card)
    assert "from 0 where the output would be more detailed than the photo" in text and "up to 1 where" in text
    assert "smoothed over 5 cells" in text
    assert _auto({"flow": {"estimator": False}}) == ""
    groups = {"flow": {"estimator": True}, "rcod": {"groups": 4, "auto_targets": "ends", "auto_range": [0.0, 0.85]}}
    assert "about 0 (clean input) to 0.85 (most degraded)" in _auto(groups) and "noise" not in _auto(groups)
    groups["rcod"]["noise_weight"] = 1.0
    assert "lower where noise outweighs the photo's detail" in _auto(groups)


def test_end_to_end_bundled_default(tmp_path):
    example = Path(__file__).parents[1] / "snapsr" / "assets" / "example.jpg"
    res = cli("upscale", example, "-o", tmp_path, "-q")
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "example_x4.jpg") as im:
        assert im.size == (1024, 640)


@pytest.mark.parametrize("bits,channels", [(8, 3), (16, 4), (8, 1)])
def test_png_pieces_deflated_apart_make_one_valid_stream(bits, channels):
    """Rows deflated in pieces by the worker pool join into one zlib stream whose Adler-32 checks."""
    rng = np.random.default_rng(bits + channels)
    h, w = 3 * imagewrite._ROWS + 37, 45  # four pieces, the last one short
    px = rng.random((h, w, channels), dtype=np.float32)
    pic = imageio.Picture(px[..., :3] if channels == 4 else px, alpha=px[..., 3] if channels == 4 else None, bits=bits)
    f = io.BytesIO()
    imagewrite._encode(f, pic, "PNG", 95)
    data, idat, pos = f.getvalue(), b"", 8
    while pos < len(data):  # the IDAT chunks joined: zlib.decompress checks the header and the Adler-32
        n = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + n]
        pos += 12 + n
    assert len(zlib.decompress(idat)) == h * (1 + w * channels * bits // 8)
    w_, h_, rows, meta = png.Reader(bytes=data).asDirect()  # a strict reader
    got = np.array([list(r) for r in rows]).reshape(h, w, channels)
    want = np.round(px * (2**bits - 1))
    assert (w_, h_, meta["bitdepth"]) == (w, h, bits) and np.abs(got - want).max() == 0


def test_adler32_combine_matches_zlib():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    for cut in (0, 1, 65520, 65521, 123_457, len(data)):
        a, b = zlib.adler32(data[:cut]), zlib.adler32(data[cut:])
        assert imagewrite._adler32_combine(a, b, len(data) - cut) == zlib.adler32(data)
