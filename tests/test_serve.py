"""``snapsr serve``: the session's logic directly, then the page in a real browser.

The browser test needs Gradio and Playwright (``pip install 'snapsr[serve]'``) and Debian's
``chromium``; ``.ci/run`` installs them and sets ``SNAPSR_REQUIRE_BROWSER=1``, so there a missing
piece fails instead of skipping. It writes its screenshot to ``results/serve.png``.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio") if not os.environ.get("SNAPSR_REQUIRE_BROWSER") else __import__("gradio")

from snapsr.app.session import Limits, Session, Settings, paint_map  # noqa: E402
from snapsr.app.ui import dial_default  # noqa: E402
from snapsr.infer.imageio import ImageReadError  # noqa: E402
from snapsr.model import pretrained  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "snapsr" / "assets" / "example.jpg"


@pytest.fixture
def session(tmp_path):
    s = Session(Limits(max_output_pixels=2_000_000, max_upload_mb=1), tmp_path / "serve")
    yield s
    s.close()
    assert not (tmp_path / "serve").exists(), "the session's folder outlived it"


def _photo(tmp_path) -> Path:
    exif = Image.Exif()
    exif[0x010F] = "snapsr-test-camera"
    img = Image.open(EXAMPLE).crop((64, 32, 160, 96))
    path = tmp_path / "shot.jpg"
    img.save(path, exif=exif.tobytes(), quality=92, dpi=(300, 300))
    return path


def test_painted_layers_set_the_dial_where_painted():
    assert paint_map(None, 0.5) is None and paint_map([np.zeros((4, 4, 4), np.uint8)], 0.5) is None
    white = np.zeros((4, 6, 4), np.uint8)
    white[1:3, 2:4] = 255  # opaque white: realism 1 there
    black = np.zeros((4, 6, 4), np.uint8)
    black[2, 3, 3] = 255  # opaque black on top: realism 0
    m = paint_map([white, black], 0.25)
    assert m.shape == (4, 6) and m[0, 0] == 0.25 and m[1, 2] == 1.0 and m[2, 3] == 0.0


def test_session_upscales_writes_the_inputs_format_and_metadata(session, tmp_path):
    pic = session.load(_photo(tmp_path))
    prev = session.preview(pic, Settings(realism=0.7))
    assert prev.after.shape == (64 * 4, 96 * 4, 3) and prev.path is None and prev.dial == "0.7"
    layer = np.zeros((64, 96, 4), np.uint8)
    layer[:, :48] = [255, 255, 255, 255]  # the left half inventive
    res = session.upscale(pic, Settings(realism=0.0), [layer], "shot.jpg")
    assert res.dial == "map" and res.path.parent == session.dir and session.last is res
    with Image.open(res.path) as out:
        assert out.format == "JPEG" and out.size == (384, 256)
        assert out.getexif()[0x010F] == "snapsr-test-camera" and round(out.info["dpi"][0]) == 300
    plain = session.upscale(pic, Settings(realism=0.0), None, "plain.jpg")
    d = np.abs(res.after.astype(int) - plain.after.astype(int))
    assert d[:, 200:].mean() < d[:, :180].mean() / 4  # the map changed the painted half only


def test_session_refuses_what_the_cli_refuses(session, tmp_path):
    (tmp_path / "fake.png").write_bytes(b"%PDF-1.4 not an image")
    with pytest.raises(ImageReadError, match="fake.png"):
        session.load(tmp_path / "fake.png")
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), np.uint8)).save(big)
    with pytest.raises(ValueError, match="larger than 1 MB"):
        session.load(big)
    pic = session.load(_photo(tmp_path))
    with pytest.raises(ValueError, match="over this server's limit"):
        session.upscale(pic, Settings(scale=20.0))
    with pytest.raises(ValueError, match="no bundled model"):
        session.preview(pic, Settings(model="../etc/passwd"))
    layer = session.estimator_layer(pic, Settings(), (48, 32))
    assert layer.shape == (32, 48, 4) and (layer[..., 3] == 255).all()


# -- the page, in a real browser ---------------------------------------------------------


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None:
        if os.environ.get("SNAPSR_REQUIRE_BROWSER"):
            pytest.fail("the browser test needs playwright (pip) and chromium (apt)")
        pytest.skip("no playwright or chromium")
    return chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_page_in_a_browser_upload_slide_paint_upscale(tmp_path):
    chromium = _browser()
    from playwright.sync_api import sync_playwright

    from snapsr.app import server

    app = server.start(port=_free_port(), max_upload_mb=5)
    try:
        assert app.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(app.url) as r:
            assert r.status == 200
        for outside in ("/etc/passwd", str(ROOT / "README.md")):  # nothing outside the session folder
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"{app.url}gradio_api/file={outside}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1150})
            page.goto(app.url)
            page.set_input_files("#snapsr-files input[type=file]", str(EXAMPLE))
            info = "document.querySelector('#snapsr-info').innerText"
            page.wait_for_function(f"{info}.includes('preview')", timeout=90_000)
            # the dial starts at the default model's own default (auto: the estimator)
            assert page.is_checked("#snapsr-auto input") == dial_default(pretrained.DEFAULT)[1]
            number = page.locator("#snapsr-realism input[type=number]")
            number.fill("0.8")  # moving the dial turns auto off
            number.press("Enter")
            page.wait_for_function(f"{info}.includes('realism 0.8')", timeout=90_000)
            box = page.locator("#snapsr-editor canvas").first.bounding_box()
            x, y = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.3
            page.mouse.move(x, y)
            page.mouse.down()
            for k in range(20):  # a white stroke: realism 1 where it passes
                page.mouse.move(x + 8 * k, y + 3 * k, steps=2)
            page.mouse.up()
            page.click("#snapsr-run")
            result = "document.querySelector('#snapsr-result').innerText"
            page.wait_for_function(f"{result}.includes('->')", timeout=120_000)
            page.wait_for_selector("#snapsr-download a", timeout=30_000)
            idle = "(() => { const c = document.querySelector('#snapsr-compare');"
            idle += " return c.querySelectorAll('img').length == 2 && !c.innerText.includes('processing'); })()"
            page.wait_for_function(idle, timeout=60_000)  # the last preview drawn: a clean screenshot
            loupe_x = page.locator("#snapsr-loupe-x input[type=number]")
            loupe_x.fill("30")
            loupe_x.press("Enter")
            loupe = "(() => { const l = document.querySelector('#snapsr-loupe'); const i = l.querySelector('img');"
            loupe += " return i && i.complete && i.offsetWidth > 0 && !l.querySelector('.pending')"
            loupe += " && !/[0-9]+[.][0-9]s/.test(l.innerText) && !l.innerText.includes('processing'); })()"
            page.wait_for_function(loupe, timeout=30_000)  # the loupe drawn, not loading, in the screenshot
            results = ROOT / "results"
            results.mkdir(exist_ok=True)
            page.screenshot(path=str(results / "serve.png"), full_page=True)
            text = page.inner_text("#snapsr-result")
            browser.close()
        res = app.session.last
        assert "256x160 -> 1024x640" in text and "realism map" in text
        assert res.dial == "map" and res.path.is_file() and res.path.parent == app.session.dir
        with Image.open(res.path) as out:
            assert out.format == "JPEG" and out.size == (1024, 640)
        plain = app.session.upscale(app.session.load(EXAMPLE), Settings(realism=0.8), None, "plain.jpg")
        painted = np.abs(res.after.astype(int) - plain.after.astype(int)).mean(-1) > 2
        assert 0.005 < painted.mean() < 0.5, "the painted stroke did not reach the dial (or took over the image)"
        # what the page showed is the result
        buf = io.BytesIO(urllib.request.urlopen(_download_url(app, res.path.name)).read())
        assert Image.open(buf).size == (1024, 640)
    finally:
        app.close()
    assert not app.workdir.exists()  # uploads, Gradio's cache and the outputs: all gone


def _download_url(app, name: str) -> str:
    gradio_dir = Path(os.environ["GRADIO_TEMP_DIR"])
    served = next(gradio_dir.rglob(name))
    return f"{app.url}gradio_api/file={served}"


def test_serve_command_refuses_without_gradio(monkeypatch):
    from click.testing import CliRunner

    from snapsr.cli import main

    monkeypatch.setitem(__import__("sys").modules, "gradio", None)  # as if not installed
    monkeypatch.delitem(__import__("sys").modules, "snapsr.app.server", raising=False)
    monkeypatch.delitem(__import__("sys").modules, "snapsr.app.ui", raising=False)
    res = CliRunner().invoke(main, ["serve"])
    assert res.exit_code == 1 and "pip install 'snapsr[serve]'" in res.output


def test_loupe_shows_both_images_around_the_click():
    from snapsr.app.ui import loupe_view

    before = np.zeros((100, 120, 3), np.uint8)
    after = np.full((100, 120, 3), 200, np.uint8)
    after[90:, 110:] = 50  # the corner: the window is kept inside the image
    view = loupe_view(before, after, 119, 99, side=16, zoom=3)
    assert view.shape == (48, (16 + 2 + 16) * 3, 3)
    assert (view[:, :48] == 0).all() and view[-1, -1, 0] == 50 and view[0, 60, 0] == 200


def test_stale_folders_of_killed_servers_are_removed(tmp_path):
    from snapsr.app import server

    dead, alive, young = (tmp_path / f"{server.PREFIX}{n}" for n in ("dead", "alive", "young"))
    for d in (dead, alive, young):
        d.mkdir()
    (dead / "pid").write_text("999999999")  # no such process
    (alive / "pid").write_text(str(os.getppid()))  # the test runner's parent: running
    assert server.clean_stale(tmp_path) == 1
    assert not dead.exists() and alive.exists() and young.exists()  # young: no pid file, under a day old
