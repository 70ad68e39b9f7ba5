"""Reading images as a photographer expects (writing: ``imagewrite.py``).

Only the photographic formats in ``ACCEPTED`` are read, chosen by the file's content (never
its name): Pillow is not allowed to try any other decoder (EPS would run Ghostscript on
untrusted input). EXIF orientation applied; ICC profile, EXIF and DPI kept for the writer;
alpha separated (upscaled on its own and put back); greyscale stays greyscale;
16-bit PNG and TIFF stay 16-bit (Pillow has no 16-bit RGB mode, so pypng and
tifffile read and write those); palette and CMYK converted; animations give their
first frame with a warning; files over the pixel limit, truncated, corrupt or not
images raise ``ImageReadError`` naming the file.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from snapsr.errors import first_line

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own hard limit (2x MAX_IMAGE_PIXELS)
# Pillow's decoders we allow (its JPEG decoder also opens multi-picture JPEGs from phones, as "MPO").
ACCEPTED = ("JPEG", "PNG", "WEBP", "AVIF", "TIFF", "BMP", "GIF", "PPM")
ACCEPTED_TEXT = "JPEG, PNG, WebP, AVIF, TIFF, BMP, GIF (first frame), PPM/PGM"
# Formats people try that we refuse, recognised by their first bytes for a clearer message.
_REFUSED_MAGIC = {
    b"%!PS": "PostScript/EPS",
    b"\xc5\xd0\xd3\xc6": "EPS",
    b"%PDF": "PDF",
    b"8BPS": "Photoshop PSD",
    b"\x00\x00\x01\x00": "ICO",
    b"<svg": "SVG",
    b"<?xm": "XML/SVG",
}
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF"}
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif"}


class ImageReadError(Exception):
    """A file that cannot be read as an image; the message names the file."""


@dataclass
class Picture:
    """Pixels as float32 ``HxWxC`` in [0, 1] (C = 1 grey or 3 colour), plus what to keep on save."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None  # HxW float32 in [0, 1]
    bits: int = 8
    format: str | None = None  # Pillow's name of the source format
    icc: bytes | None = None
    exif: bytes | None = None
    info: dict = field(default_factory=dict)  # dpi and the like
    frames: int = 1

    @property
    def size(self) -> tuple[int, int]:  # (width, height)
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def grey(self) -> bool:
        return self.pixels.shape[-1] == 1


# ---------------------------------------------------------------------------
# listing


def list_files(root: str | Path, recursive: bool = True) -> list[Path]:
    """Every non-hidden regular file under ``root``, sorted; no extension filter (Pillow decides)."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"no such file or folder: {root}")
    out = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out += [Path(dirpath) / f for f in filenames if not f.startswith(".")]
    else:
        # everything but folders, as os.walk lists it: a broken link or a symlink loop is reported, not skipped
        out = [p for p in root.iterdir() if not p.is_dir() and not p.name.startswith(".")]
    return sorted(out)


def expand_input(item: str, recursive: bool) -> tuple[str, list[Path]]:
    """What one command-line input names: ``("folder", its files)``, ``("file", [it])``, ``("pattern",
    the files it matches)``, ``("unmatched", [])`` for a pattern that matches nothing, or ``("missing", [])``.
    Torch-free, so ``snapsr upscale`` can look at its inputs before importing it."""
    p = Path(item)
    if p.is_dir():
        return "folder", list_files(p, recursive=recursive)
    if p.is_file():
        return "file", [p]
    if glob.has_magic(item):
        matches = sorted(glob.glob(item, recursive=recursive))
        return ("pattern" if matches else "unmatched"), [Path(m) for m in matches if Path(m).is_file()]
    return "missing", []


# ---------------------------------------------------------------------------
# reading


def _png_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(26)
    # 16-bit RGB, grey + alpha, RGBA: Pillow would reduce these to 8 bits (16-bit grey it reads itself)
    return head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 4, 6)


def _read_png16(path: Path) -> np.ndarray:
    import png

    w, h, rows, meta = png.Reader(filename=str(path)).asDirect()
    planes = meta["planes"]
    return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, planes)


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation 1-8 on an ``HxWxC`` array (for pixels read outside Pillow), as
    ``ImageOps.exif_transpose`` does it (tested against it for every value)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](arr)) if orientation in ops else arr


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    path = Path(path)
    try:
        return _read(path, max_pixels)
    except ImageReadError as e:
        if str(path) in str(e):
            raise
        raise ImageReadError(f"{path}: {e}") from None
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to decode it") from None
    except Exception as e:  # noqa: BLE001 - decoders meeting corrupt data raise anything (TypeError, struct.error, ...)
        raise ImageReadError(f"{path}: not a readable image ({first_line(e)})") from None


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Pillow's image, tried only as the accepted formats; its own bomb guard follows ``max_pixels``."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey bottom half
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(max_pixels // 2 + 1, 1)  # Pillow refuses above twice this; we check first
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path, formats=ACCEPTED)
    except Image.UnidentifiedImageError:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
        kind = next((name for magic, name in _REFUSED_MAGIC.items() if head.startswith(magic)), None)
        what = f"a {kind} file, not an accepted format" if kind else "not an image in an accepted format"
        raise ImageReadError(f"{path}: {what} (accepted: {ACCEPTED_TEXT})") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: {e}; raise the limit with --max-pixels") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _read(path: Path, max_pixels: int) -> Picture:
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    im = _open(path, max_pixels)
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageReadError(
                f"{path}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
                "(a guard against decompression bombs); raise it with --max-pixels"
            )
        frames = getattr(im, "n_frames", 1)
        fmt = im.format
        icc = im.info.get("icc_profile")
        exif = im.getexif()
        orientation = int(exif.get(0x0112, 1))
        info = {k: im.info[k] for k in ("dpi",) if k in im.info}
        bits16 = False
        if im.mode == "CMYK":  # converted to RGB below: a CMYK profile must not travel with RGB pixels
            im, icc = _cmyk_to_rgb(im, icc), None
        if fmt == "PNG" and _png_16bit_colour(path):
            arr = _apply_orientation(_read_png16(path), orientation)
            bits16 = True
        elif fmt == "TIFF" and 16 in tuple(im.tag_v2.get(258, (8,))) and im.mode not in ("I;16", "I;16B", "I;16L"):
            import tifffile

            arr = tifffile.imread(str(path))
            arr = arr[..., None] if arr.ndim == 2 else arr
            if arr.ndim != 3 or arr.dtype != np.uint16:
                raise ImageReadError(f"{path}: unsupported TIFF layout {arr.shape} {arr.dtype}")
            arr = _apply_orientation(arr, orientation)
            bits16 = True
        else:
            im.seek(0)
            im.load()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                up = ImageOps.exif_transpose(im)
            arr, bits16 = _pil_to_array(up if up is not None else im)
        if 0x0112 in exif:
            exif[0x0112] = 1  # the pixels are upright now
    pixels, alpha = _split(arr, 65535.0 if bits16 else 255.0)
    return Picture(pixels, alpha, 16 if bits16 else 8, fmt, icc, exif.tobytes() if len(exif) else None, info, frames)


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """CMYK -> sRGB through the file's own CMYK profile where it has a usable one, else Pillow's
    plain conversion; the result is sRGB, so no profile is kept."""
    im.load()
    out = None
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # noqa: BLE001 - a damaged or odd profile: fall back to the plain conversion
            out = None
    out = out if out is not None else im.convert("RGB")
    out.info.update({k: v for k, v in im.info.items() if k != "icc_profile"})
    return out


def _float_to_16bit(a: np.ndarray) -> np.ndarray:
    """A float image (``[0, 1]``, or ``[0, 255]`` when its finite maximum is above 1) -> uint16;
    NaN becomes the median of the finite values, +Inf their maximum and -Inf their minimum, with a
    warning; an image with no finite value is refused."""
    finite = np.isfinite(a)
    if not finite.any():
        raise ImageReadError("no finite pixel values (all NaN or Inf)")
    bad = int(a.size - finite.sum())
    values = a[finite]
    top = float(values.max())
    scale = 1.0 if top <= 1.0 else 255.0
    if bad:
        warnings.warn(f"{bad} NaN/Inf pixel value(s) replaced (NaN by the median, +/-Inf by the max/min)", stacklevel=2)
        a = np.where(
            np.isnan(a), np.median(values), np.where(np.isposinf(a), top, np.where(np.isneginf(a), values.min(), a))
        )
    return (np.clip(a / scale, 0, 1) * 65535).round().astype(np.uint16)


def _pil_to_array(im: Image.Image) -> tuple[np.ndarray, bool]:
    """Any Pillow mode -> (``HxWxC`` uint8/uint16 array, is 16-bit)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im).astype(np.uint16)[..., None], True
    if mode == "I":  # 16-bit PNGs open as 32-bit integer
        a = np.asarray(im)
        return np.clip(a, 0, 65535).astype(np.uint16)[..., None], True
    if mode == "F":
        return _float_to_16bit(np.asarray(im, dtype=np.float32))[..., None], True
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))[..., None], False
    if mode in ("LA", "La"):
        return np.asarray(im.convert("LA")), False
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB")), False
    if mode in ("RGBA", "RGBa"):
        return np.asarray(im.convert("RGBA")), False
    return np.asarray(im.convert("RGB")), False  # RGB, CMYK, YCbCr, LAB, HSV, ...


def _split(arr: np.ndarray, peak: float) -> tuple[np.ndarray, np.ndarray | None]:
    c = arr.shape[-1]
    f = arr.astype(np.float32) / peak
    if c in (2, 4):
        return np.ascontiguousarray(f[..., :-1]), np.ascontiguousarray(f[..., -1])
    return np.ascontiguousarray(f), None


def from_pil(im: Image.Image) -> Picture:
    """An in-memory Pillow image (any mode) -> ``Picture``, keeping its ICC profile."""
    arr, deep = _pil_to_array(im)
    pixels, alpha = _split(arr, 65535.0 if deep else 255.0)
    return Picture(pixels, alpha, 16 if deep else 8, im.format, im.info.get("icc_profile"))


def to_pil(pic: Picture) -> Image.Image:
    """``Picture`` -> Pillow image: L, LA, RGB or RGBA (8-bit), or I;16 for 16-bit greyscale."""
    px = pic.pixels
    if pic.bits == 16 and pic.grey and pic.alpha is None:
        out = Image.fromarray((np.clip(px[..., 0], 0, 1) * 65535).round().astype(np.uint16))
    else:
        arr = px if pic.alpha is None else np.concatenate([px, pic.alpha[..., None]], -1)
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]]
        out = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr, mode=mode)
    if pic.icc:
        out.info["icc_profile"] = pic.icc
    return out


def read_rgb(path: str | Path) -> np.ndarray:
    """``HxWx3`` uint8 RGB, upright; for training and evaluation data."""
    pic = read_image(path)
    px = np.repeat(pic.pixels, 3, axis=-1) if pic.grey else pic.pixels
    return (px * 255).round().astype(np.uint8)


def to_tensor(img: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255)
