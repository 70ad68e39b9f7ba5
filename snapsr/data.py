"""Training data: random HR crops from any folder of images.

A batch is a pure function of ``(seed, step, rank)``, so a resumed run sees the
same batches as one never stopped, with or without loader workers.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from snapsr.infer.imageio import ImageReadError, list_files, read_rgb


def stream_seed(*parts) -> int:
    """A 63-bit seed from any tuple, stable across processes and Python runs."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def _rescale(img: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC, reducing_gap=None))


class HRCrops(torch.utils.data.Dataset):
    """Index ``step`` -> a batch ``(B,3,crop,crop)`` of augmented HR crops in [0, 1]."""

    def __init__(
        self,
        root: str | Path,
        *,
        crop: int,
        batch_size: int,
        multiscale=(1.0,),
        cache: bool = True,
        seed: int = 0,
        rank: int = 0,
        log=None,
    ):
        self.crop, self.batch_size, self.seed, self.rank = crop, batch_size, seed, rank
        self.multiscale = tuple(multiscale)
        self.cache = cache
        log = log or (lambda msg: print(msg, file=sys.stderr))
        self.files: list[Path] = []
        self.skipped: list[tuple[Path, str]] = []
        self._images: dict[tuple[int, float], np.ndarray] = {}
        for path in list_files(root):
            try:
                if cache:
                    img = read_rgb(path)
                    for f in self.multiscale:
                        self._images[(len(self.files), f)] = _rescale(img, f)
                else:
                    with Image.open(path) as im:
                        im.size  # noqa: B018  (header only: fails fast on non-images)
            except (ImageReadError, OSError, ValueError, Image.DecompressionBombError) as e:
                self.skipped.append((path, str(e)))
                log(f"skipping {e}" if str(path) in str(e) else f"skipping {path}: {e}")
                continue
            self.files.append(path)
        if not self.files:
            raise ValueError(f"no readable images under {root}")

    def __len__(self) -> int:
        return 1 << 62  # indexed by step

    def _image(self, idx: int, factor: float, g: torch.Generator) -> np.ndarray:
        if (idx, factor) in self._images:
            return self._images[(idx, factor)]
        for _ in range(len(self.files)):
            try:
                return _rescale(read_rgb(self.files[idx]), factor)
            except ImageReadError as e:  # became unreadable after the scan: say so, use another
                print(f"skipping {self.files[idx]}: {e}", file=sys.stderr)
                idx = int(torch.randint(len(self.files), (), generator=g))
        raise RuntimeError("no readable training image left")

    def __getitem__(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(stream_seed("data", self.seed, step, self.rank))
        c = self.crop
        out = torch.empty(self.batch_size, 3, c, c)
        for b in range(self.batch_size):
            idx = int(torch.randint(len(self.files), (), generator=g))
            factor = self.multiscale[int(torch.randint(len(self.multiscale), (), generator=g))]
            img = self._image(idx, factor, g)
            h, w = img.shape[:2]
            if h < c or w < c:  # small images: enlarge just enough to cut a crop
                img = _rescale(img, c / min(h, w) + 1e-6)
                h, w = img.shape[:2]
            y = int(torch.randint(h - c + 1, (), generator=g))
            x = int(torch.randint(w - c + 1, (), generator=g))
            patch = torch.from_numpy(img[y : y + c, x : x + c].copy()).permute(2, 0, 1)
            if torch.rand((), generator=g) < 0.5:
                patch = patch.flip(-1)
            patch = torch.rot90(patch, int(torch.randint(4, (), generator=g)), dims=(-2, -1))
            out[b] = patch.float() / 255
        return out
