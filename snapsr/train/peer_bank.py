"""A peer bank: training pairs whose realistic-end target is another upscaler's output.

Real-ESRGAN x4plus (``snapsr.eval.peers``, BSD-3-Clause weights from the ``bench`` extra) costs far
more per image than a training step of ours, so its outputs are computed once, on tiles of the
training photos, and kept on disk:

    <bank>/hr/<tile>.png            the HR tile (each training photo at each of data.multiscale)
    <bank>/p<k>/<tile>.lr.png       pass k's degradation of it (degrade.*'s clean/light/full mix)
    <bank>/p<k>/<tile>.peer.png     the peer's upscale of that LR

A tile's degradation is a pure function of ``(seed, pass, tile)``, so a build that is killed
resumes where it stopped (finished files are skipped; every write is atomic) and more passes add
more degradations of the same tiles. ``PeerBankCrops`` cuts aligned ``(hr, lr, peer)`` crops from
it, batch by step like ``data.HRCrops``. The gtasr recipe uses the peer crop as its anchor target
(``data.peer_bank``): realism 0 still learns the ground truth.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from snapsr import atomic
from snapsr.config import to_dict
from snapsr.data import _rescale, stream_seed
from snapsr.degrade import DegradeConfig, degrade
from snapsr.degrade.pipeline import bicubic_down
from snapsr.infer.imageio import ImageReadError, list_files, read_rgb
from snapsr.infer.imagewrite import save_png

MANIFEST = "bank.json"  # how the bank was built: its peer, scale, seed, tiles and degradations
TILE = 1024  # the largest HR tile side: a 256-pixel LR tile, one untiled call of the peer


def _spans(length: int, tile: int, scale: int) -> list[tuple[int, int]]:
    """Equal non-overlapping spans covering ``length`` (the remainder after the last multiple of
    ``scale`` dropped), each at most ``tile`` and a multiple of ``scale``."""
    n = -(-length // tile)
    size = (length // n) // scale * scale
    return [(i * size, size) for i in range(n)]


def tiles_of(img: np.ndarray, tile: int, scale: int) -> list[tuple[int, int, np.ndarray]]:
    h, w = img.shape[:2]
    return [(y, x, img[y : y + th, x : x + tw]) for y, th in _spans(h, tile, scale) for x, tw in _spans(w, tile, scale)]


def degrade_one(hr: torch.Tensor, scale: int, cfg: DegradeConfig, g: torch.Generator) -> torch.Tensor:
    """One ``(1,3,H,W)`` tile: clean, light or full with the config's shares, drawn from ``g``."""
    u = float(torch.rand((), generator=g))
    if u < cfg.clean_share:
        return bicubic_down(hr, scale)
    light = u < cfg.clean_share + cfg.light_share
    return degrade(hr, scale, replace(cfg, clean_share=0.0, light_share=1.0 if light else 0.0), g)


def build_bank(
    train_dir: str | Path,
    out: str | Path,
    *,
    scale: int,
    degrade_cfg: DegradeConfig,
    peer: Callable[[np.ndarray], np.ndarray],
    peer_name: str = "",
    passes: int = 1,
    multiscale=(1.0,),
    tile: int = TILE,
    seed: int = 0,
    log=None,
) -> int:
    """Add ``passes`` degradations of every tile of ``train_dir`` and ``peer``'s upscale of each to
    the bank at ``out``; returns the number of (lr, peer) pairs written now. ``peer`` maps a
    ``(3,h,w)`` float image in [0, 1] to ``(3, scale h, scale w)``."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = Path(out)
    (out / "hr").mkdir(parents=True, exist_ok=True)
    manifest = {"peer": peer_name, "scale": scale, "seed": seed, "tile": tile, "multiscale": list(multiscale)}
    manifest["degrade"] = to_dict(degrade_cfg)
    old = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).is_file() else None
    if old is not None and {k: v for k, v in old.items() if k != "passes"} != manifest:
        raise ValueError(f"{out} holds a bank built with other settings ({out / MANIFEST}); use another folder")
    complete = (old or {}).get("passes", 0)  # passes finished over every tile

    def write_manifest():
        text = json.dumps({**manifest, "passes": complete}, indent=2) + "\n"
        atomic.write(out / MANIFEST, lambda f: f.write(text.encode()))

    write_manifest()
    jobs = []
    for path in list_files(train_dir):
        try:
            img = read_rgb(path)
        except ImageReadError as e:
            log(f"skipping {e}")
            continue
        for f in multiscale:
            for y, x, t in tiles_of(_rescale(img, f), tile, scale):
                name = f"{path.stem}_f{f:g}_{y}_{x}"
                if not (out / "hr" / f"{name}.png").is_file():
                    save_png(torch.from_numpy(t.copy()).permute(2, 0, 1).float() / 255, out / "hr" / f"{name}.png")
                jobs.append((name, t))
    written = 0
    for k in range(passes):
        d = out / f"p{k}"
        d.mkdir(exist_ok=True)
        order = torch.randperm(len(jobs), generator=torch.Generator().manual_seed(stream_seed("bank-order", seed, k)))
        for n, j in enumerate(order.tolist()):
            name, t = jobs[j]
            if (d / f"{name}.peer.png").is_file():
                continue
            t0 = time.perf_counter()
            hr = torch.from_numpy(t.copy()).permute(2, 0, 1).float().unsqueeze(0) / 255
            g = torch.Generator().manual_seed(stream_seed("bank", seed, k, name))
            lr = degrade_one(hr, scale, degrade_cfg, g)[0].float()  # 8-bit levels already (degrade quantizes)
            sr = torch.from_numpy(np.asarray(peer(lr.numpy()), np.float32))
            if sr.shape != (3, lr.shape[1] * scale, lr.shape[2] * scale):
                raise ValueError(f"the peer gave {tuple(sr.shape)} for a {tuple(lr.shape)} input at x{scale}")
            save_png(lr, d / f"{name}.lr.png")
            save_png(sr.clamp(0, 1), d / f"{name}.peer.png")  # last: its presence marks the pair done
            written += 1
            log(f"pass {k} {n + 1}/{len(jobs)} {name} {time.perf_counter() - t0:.1f} s")
        complete = max(complete, k + 1)
        write_manifest()
    return written


class PeerBankCrops(torch.utils.data.Dataset):
    """Index ``step`` -> ``(hr, lr, peer)`` batches of aligned, augmented crops from a peer bank."""

    def __init__(self, root: str | Path, *, crop: int, scale: int, batch_size: int, seed: int = 0, rank: int = 0):
        root = Path(root)
        if crop % scale:
            raise ValueError(f"the crop ({crop}) must be a multiple of the scale ({scale})")
        self.crop, self.scale, self.batch_size, self.seed, self.rank = crop, scale, batch_size, seed, rank
        self.manifest = json.loads((root / MANIFEST).read_text()) if (root / MANIFEST).is_file() else {}
        if self.manifest.get("scale", scale) != scale:  # before reading a single image
            raise ValueError(f"peer bank {root} is x{self.manifest['scale']}, the model x{scale}")
        self.hr: dict[str, np.ndarray] = {}
        self.pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
        for peer in sorted(root.glob("p*/*.peer.png")):
            name = peer.name[: -len(".peer.png")]
            lr_path, hr_path = peer.with_name(f"{name}.lr.png"), root / "hr" / f"{name}.png"
            if not (lr_path.is_file() and hr_path.is_file()):
                continue
            if name not in self.hr:
                self.hr[name] = read_rgb(hr_path)
            hr, lr, sr = self.hr[name], read_rgb(lr_path), read_rgb(peer)
            h, w = lr.shape[:2]
            if hr.shape[:2] != (h * scale, w * scale) or sr.shape != hr.shape:
                raise ValueError(
                    f"peer bank {peer}: HR {hr.shape[:2]}, LR {lr.shape[:2]} and peer {sr.shape[:2]} "
                    f"do not match at x{scale}"
                )
            if min(h, w) * scale < crop:
                continue
            self.pairs.append((name, lr, sr))
        if not self.pairs:
            raise FileNotFoundError(f"no peer bank pairs under {root} (snapsr train bank builds them)")

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(stream_seed("bank-data", self.seed, step, self.rank))
        c, s = self.crop, self.scale
        cl = c // s
        hrs, lrs, peers = (torch.empty(self.batch_size, 3, n, n) for n in (c, cl, c))
        for b in range(self.batch_size):
            name, lr, sr = self.pairs[int(torch.randint(len(self.pairs), (), generator=g))]
            h, w = lr.shape[:2]
            y = int(torch.randint(h - cl + 1, (), generator=g))
            x = int(torch.randint(w - cl + 1, (), generator=g))
            flip = bool(torch.rand((), generator=g) < 0.5)
            rot = int(torch.randint(4, (), generator=g))
            hr = self.hr[name]
            for dst, img, k in ((hrs, hr, s), (lrs, lr, 1), (peers, sr, s)):
                patch = torch.from_numpy(img[y * k : y * k + cl * k, x * k : x * k + cl * k].copy()).permute(2, 0, 1)
                if flip:
                    patch = patch.flip(-1)
                dst[b] = torch.rot90(patch, rot, dims=(-2, -1)).float() / 255
        return hrs, lrs, peers
