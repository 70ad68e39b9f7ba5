"""Hostile and unlucky input through the real command line (issue 13): crashes and lost outputs.

    python benchmarks/hostile.py

Builds a folder where good photos sit between every kind of bad file (EPS, PSD, ICO, a truncated
JPEG, an empty file, text, a symlink loop, a bomb header, NaN/Inf and all-NaN float TIFFs, a dark
16-bit PNG, a CMYK JPEG, a name clash), runs `snapsr upscale` on it twice (the second run must
write nothing and take none of its own outputs), then runs it with damaged weights files. Prints
one row per run and the totals: a crash is a traceback or an exit code other than 0 or 1; a lost
output is a good input with no output after the first run. The tests (tests/test_hostile.py)
check each case; this counts them end to end.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def build(d: Path) -> list[str]:
    """The hostile folder; returns the names of the good inputs (each must get an output)."""
    rng = np.random.default_rng(0)
    photo = lambda h=24, w=32: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    good = []
    for i in range(4):
        Image.fromarray(photo()).save(d / f"good{i}.jpg", quality=90)
        good.append(f"good{i}.jpg")
    Image.fromarray(photo()).convert("CMYK").save(d / "cmyk.jpg")
    good.append("cmyk.jpg")
    import png

    dark = (rng.random((24, 32, 3)) * 214).astype(np.uint16)
    png.Writer(32, 24, greyscale=False, bitdepth=16).write(open(d / "dark16.png", "wb"), dark.reshape(24, -1).tolist())
    good.append("dark16.png")
    f = rng.random((24, 32)).astype(np.float32)
    f[3, 3] = np.nan
    f[4, 4] = np.inf
    Image.fromarray(f, mode="F").save(d / "naninf.tif")
    good.append("naninf.tif")
    Image.fromarray(np.full((24, 32), np.nan, np.float32), mode="F").save(d / "allnan.tif")
    (d / "page.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    (d / "layers.psd").write_bytes(b"8BPS\x00\x01" + bytes(40))
    Image.fromarray(photo(16, 16)).save(d / "icon.ico")
    (d / "truncated.jpg").write_bytes((d / "good0.jpg").read_bytes()[:300])
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("not an image")
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b""))
    os.symlink(d / "loop.jpg", d / "loop.jpg")
    (d / "sub").mkdir()
    Image.fromarray(photo()).save(d / "sub" / "deep.png")
    good.append("deep.png")
    Image.fromarray(photo()).save(d / "good0.png")  # would write good0.jpg's output (--format png): fails, named
    return good


def run(args: list[str]) -> tuple[int, str, dict]:
    res = subprocess.run([sys.executable, "-m", "snapsr", *args], capture_output=True, text=True)
    try:
        summary = json.loads(res.stdout) if res.stdout.strip() else {}
    except json.JSONDecodeError:
        summary = {}
    return res.returncode, res.stderr, summary


def main() -> None:
    rows, crashes, lost = [], 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        d, out = Path(tmp) / "in", Path(tmp) / "out"
        d.mkdir()
        good = build(d)
        for i in (1, 2):
            code, err, s = run(["upscale", str(d), "-r", "-o", str(out), "--format", "png", "-q", "--json"])
            crash = "Traceback" in err or code not in (0, 1)
            crashes += crash
            errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
            if i == 1:
                made = {p.stem.removesuffix("_x4") for p in out.rglob("*.png")}
                lost += sum(Path(g).stem not in made for g in good)
            rows.append((f"upscale run {i}", code, crash, len(errors), s.get("written"), s.get("skipped")))
        assert not list(out.rglob("*_x4_x4*")), "a re-run upscaled its own output"
        w = Path(tmp) / "w"
        w.mkdir()
        blobs = {
            "pickle.safetensors": pickle.dumps({"a": 1}),
            "empty.safetensors": b"",
            "huge_header.safetensors": struct.pack("<Q", 2**62) + b"{}",
        }
        for name, blob in blobs.items():
            (w / name).write_bytes(blob)
            code, err, _ = run(["upscale", str(d / "good0.jpg"), "-o", str(out / "w"), "--weights", str(w / name)])
            crash = "Traceback" in err or code not in (0, 1)
            crashes += crash
            rows.append((f"weights {name}", code, crash, len(err.strip().splitlines()), None, None))
    print("| run | exit | crash | error lines | written | skipped |\n|---|---:|---|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join("" if v is None else str(v) for v in r) + " |")
    print(f"\n{len(rows)} runs, {crashes} crashes, {lost} lost outputs of {len(good)} good inputs")
    sys.exit(1 if crashes or lost else 0)


if __name__ == "__main__":
    main()
