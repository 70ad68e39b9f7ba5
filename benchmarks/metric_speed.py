"""Seconds per image for the no-reference learned metrics at their published sizes (MUSIQ KonIQ,
MANIQA, CLIP-IQA RN50), beside NIQE in the same run; medians after two warm-up runs, timed as
`snapsr bench` times. Random weights: the time does not depend on their values, and the
published files need not be on the machine.

    python benchmarks/metric_speed.py --size 1020x680 --repeats 3 [--device cuda]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from snapsr.eval.bench import _median_seconds


def build(name: str) -> torch.nn.Module:
    from snapsr.eval.iqa import clip_tokenizer, clipiqa, maniqa, musiq

    if name == "musiq":
        return musiq.MUSIQ(musiq.MusiqConfig())
    if name == "maniqa":
        return maniqa.MANIQA(maniqa.ManiqaConfig())
    # no BPE merges needed: the prompts are encoded once, only the image tower is timed
    tok = clip_tokenizer.ClipTokenizer([])
    return clipiqa.CLIPIQA(clipiqa.ClipRN(clipiqa.ClipConfig(vocab=len(tok.encoder))), tok)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1020x680", help="WxH of the scored image")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    dev = torch.device(args.device)
    img = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(dev)

    def timed(fn) -> float:
        def run():
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()

        return _median_seconds(run, args.repeats)

    from snapsr.eval.niqe import niqe

    arr = (img[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    rows = [("niqe (CPU)", timed(lambda: niqe(arr, 4)))]
    for name in ("musiq", "maniqa", "clipiqa"):
        net = build(name).to(dev)
        with torch.no_grad():
            rows.append((name, timed(lambda net=net: net(img))))
    print(f"| metric | s per {w}x{h} image ({args.device}, median of {args.repeats}) |\n|---|---:|")
    for name, t in rows:
        print(f"| {name} | {t:.2f} |")


if __name__ == "__main__":
    main()
