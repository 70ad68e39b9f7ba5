"""Upscaling many files: inputs from files, folders and globs; output names; skip, fail, go on.

One bad file never stops a batch: it is reported by name, the rest are written,
and the summary (and exit code) says how many failed.
"""

from __future__ import annotations

import glob
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from snapsr.imageio import EXTENSIONS, ImageReadError, list_files, output_format, read_image, write_image


@dataclass(frozen=True)
class Job:
    src: Path
    dst_dir: Path | None  # None: beside the input
    rel_parent: Path  # sub-folder under dst_dir that mirrors the input tree


@dataclass
class Outcome:
    src: str
    dst: str | None
    status: str  # written | skipped | failed
    message: str = ""
    seconds: float = 0.0
    megapixels_in: float = 0.0


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def megapixels(self) -> float:
        return sum(o.megapixels_in for o in self.outcomes if o.status == "written")

    def line(self) -> str:
        return (
            f"{self.count('written')} written, {self.count('skipped')} skipped (output exists), "
            f"{self.count('failed')} failed; {self.megapixels:.2f} input megapixels in {self.seconds:.1f} s"
        )

    def as_dict(self) -> dict:
        return {
            "written": self.count("written"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "input_megapixels": round(self.megapixels, 4),
            "seconds": round(self.seconds, 3),
            "files": [asdict(o) for o in self.outcomes],
        }


def collect(inputs: list[str], output: str | None, recursive: bool) -> tuple[list[Job], list[Outcome]]:
    """Expand files, folders and glob patterns; unknown paths become failed outcomes, not exceptions."""
    jobs: list[Job] = []
    missing: list[Outcome] = []
    dst = Path(output) if output else None
    seen: set[Path] = set()

    def add(p: Path, root: Path | None):
        key = p.resolve()
        if key in seen:
            return
        seen.add(key)
        rel = p.parent.relative_to(root) if root is not None else Path()
        jobs.append(Job(p, dst, rel))

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in list_files(p, recursive=recursive):
                add(f, p)
        elif p.is_file():
            add(p, None)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=recursive))
            if not matches:
                missing.append(Outcome(item, None, "failed", "no file matches this pattern"))
            for m in matches:
                if Path(m).is_file():
                    add(Path(m), None)
        else:
            missing.append(Outcome(item, None, "failed", "no such file or folder"))
    return jobs, missing


def output_path(job: Job, fmt_name: str, template: str, scale: float) -> Path:
    scale_txt = f"{scale:g}"
    ext = EXTENSIONS[fmt_name].lstrip(".")
    if fmt_name == "JPEG" and job.src.suffix.lower() == ".jpeg":
        ext = "jpeg"
    if fmt_name == "TIFF" and job.src.suffix.lower() == ".tiff":
        ext = "tiff"
    name = template.format(stem=job.src.stem, scale=scale_txt, ext=ext)
    folder = job.src.parent if job.dst_dir is None else job.dst_dir / job.rel_parent
    return folder / name


def run(
    upscaler,
    jobs: list[Job],
    *,
    fmt: str = "same",
    quality: int = 95,
    template: str = "{stem}_x{scale}.{ext}",
    overwrite: bool = False,
    overwrite_inputs: bool = False,
    realism: float | str | None = None,  # None: the model's default
    realism_map=None,
    seed: int = 0,
    scale: float | None = None,
    max_pixels: int | None = None,
    progress: bool = True,
    log=None,
) -> Summary:
    log = log or (lambda msg: print(msg, file=sys.stderr))
    summary = Summary()
    t_all = time.perf_counter()
    out_scale = scale if scale is not None else upscaler.scale
    inputs = {j.src.resolve() for j in jobs}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="img", dynamic_ncols=True, file=sys.stderr)
    for job in jobs:
        t0 = time.perf_counter()
        dst = None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                kw = {} if max_pixels is None else {"max_pixels": max_pixels}
                pic = read_image(job.src, **kw)
            for w in caught:
                log(f"warning: {job.src}: {w.message}")
            if pic.frames > 1:
                log(f"warning: {job.src}: {pic.frames} frames; upscaling the first only")
            fmt_name = output_format(fmt, pic.format)
            dst = output_path(job, fmt_name, template, out_scale)
            if dst.resolve() in inputs and not overwrite_inputs:
                summary.outcomes.append(
                    Outcome(
                        str(job.src),
                        str(dst),
                        "failed",
                        "output would overwrite an input; pass --overwrite-inputs to allow",
                    )
                )
                log(f"error: {job.src}: output {dst} would overwrite an input (pass --overwrite-inputs)")
                continue
            if dst.exists() and not overwrite:
                summary.outcomes.append(Outcome(str(job.src), str(dst), "skipped", "output exists"))
                continue
            w, h = pic.size
            tiles_bar = None
            if bar is not None:
                from snapsr.tiling import count_tiles

                tile, overlap = upscaler.tile_size()
                n = count_tiles(h, w, tile, overlap)
                if n > 1:
                    from tqdm import tqdm

                    tiles_bar = tqdm(total=n, unit="tile", leave=False, position=1, file=sys.stderr)
            try:
                out = upscaler.upscale_picture(
                    pic,
                    realism=realism,
                    realism_map=realism_map,
                    seed=seed,
                    scale=scale,
                    progress=(lambda b=tiles_bar: b.update(1)) if tiles_bar is not None else None,
                )
            finally:
                if tiles_bar is not None:
                    tiles_bar.close()
            write_image(dst, out, fmt_name, quality)
            summary.outcomes.append(
                Outcome(str(job.src), str(dst), "written", "", time.perf_counter() - t0, w * h / 1e6)
            )
        except (ImageReadError, OSError, ValueError) as e:
            msg = str(e) if str(job.src) in str(e) else f"{job.src}: {e}"
            log(f"error: {msg}")
            summary.outcomes.append(Outcome(str(job.src), str(dst) if dst else None, "failed", msg))
        finally:
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    summary.seconds = time.perf_counter() - t_all
    return summary
