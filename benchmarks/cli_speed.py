"""Whole-command speed: ``snapsr upscale`` on two photos against Real-ESRGAN x4plus on the same photos,
each as a fresh process that starts, loads its weights, reads, upscales and writes PNGs, timed in one run,
beside ``python -c "import torch"`` (the floor any PyTorch command pays). The same as
``snapsr bench --command CASE --photos DIR``, with the validation photos as the default; ``--json FILE`` also
writes the table beside it as ``FILE`` with ``.md``.

    python benchmarks/cli_speed.py [--case two|small|large] [--photos DIR] [--size 512x384] [--repeats 3]
        [--also WEIGHTS ...] [--json FILE]

``--also``: more weights (e.g. the fast tier, ``snapsr-x4-fast-s1``) timed as more rows of the same run.

Pause background training while this runs: both share the CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from snapsr.eval.command_speed import CASES, command_speed, format_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="../shared/data/photos/val")
    ap.add_argument("--size", default="512x384")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--case", default="two", choices=CASES)
    ap.add_argument("--also", action="append", default=[], help="more weights, timed in the same run")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    r = command_speed(a.case, Path(a.photos), (w, h), a.repeats, a.weights, also=tuple(a.also))
    print(format_result(r))
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
        Path(a.json).with_suffix(".md").write_text(format_result(r) + "\n")


if __name__ == "__main__":
    main()
