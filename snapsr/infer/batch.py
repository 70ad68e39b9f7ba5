"""Upscaling many files: inputs from files, folders and globs; output names; skip, fail, go on.

One bad file never stops a batch: it is reported by name, the rest are written,
and the summary (and exit code) says how many failed. Before any work the batch is
planned (``plan``): files that are this batch's own outputs (a re-run over a folder that
already holds ``a_x4.jpg`` beside ``a.jpg``) are skipped, two inputs that would write the
same output are a failure named before anything runs, and temporary files a killed run
left in the output folders are removed.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from snapsr import atomic
from snapsr.errors import first_line
from snapsr.infer.imageio import EXTENSIONS, FORMATS, ImageReadError, expand_input, read_image
from snapsr.infer.imagewrite import output_format, write_image, write_rows
from snapsr.infer.realism import Realism

DEFAULT_MAX_OUTPUT_PIXELS = 400_000_000  # a 6000x4000 photo at x4 is 384 MP
# Outputs above this stream to their file in bands of rows (Upscaler.upscale_picture_rows), so memory
# stays bounded by --max-memory plus, for JPEG/WebP/8-bit TIFF, the encoder's 4 bytes a pixel.
STREAM_ABOVE = 64_000_000


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
        own = sum(o.status == "skipped" and o.message.startswith("an output of") for o in self.outcomes)
        skipped = f"{self.count('skipped') - own} skipped (output exists)"
        if own:
            skipped += f", {own} skipped (outputs of other inputs)"
        return (
            f"{self.count('written')} written, {skipped}, "
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
        try:
            key = p.resolve()
        except (RuntimeError, OSError) as e:  # a symlink loop (RuntimeError before Python 3.13)
            missing.append(Outcome(str(p), None, "failed", f"cannot resolve this path ({e})"))
            return
        if key in seen:
            return
        seen.add(key)
        rel = p.parent.relative_to(root) if root is not None else Path()
        jobs.append(Job(p, dst, rel))

    for item in inputs:
        kind, files = expand_input(item, recursive)
        if kind == "folder" and not files:
            missing.append(Outcome(item, None, "empty", "no files in this folder"))
        elif kind == "unmatched":
            missing.append(Outcome(item, None, "failed", "no file matches this pattern"))
        elif kind == "missing":
            missing.append(Outcome(item, None, "failed", "no such file or folder"))
        for f in files:
            add(f, Path(item) if kind == "folder" else None)
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


def _guess_format(src: Path, fmt: str) -> str:
    """The output format a job will most likely get, from its name (the content decides in ``run``)."""
    source = FORMATS.get(src.suffix.lower().lstrip("."))
    return output_format(fmt, source)


def plan(jobs: list[Job], *, fmt: str, template: str, scale: float) -> tuple[list[Job], list[Outcome]]:
    """The jobs to run, and outcomes decided before any work: inputs that are outputs of other
    inputs of this batch (skipped), and inputs whose output name another input already takes (failed)."""
    made_by: dict[Path, Job] = {}  # the names an input's output can have: its guessed format, or PNG
    for j in jobs:
        for f in {_guess_format(j.src, fmt), "PNG"}:
            made_by.setdefault(output_path(j, f, template, scale).resolve(), j)
    decided: list[Outcome] = []
    claimed: dict[Path, Job] = {}
    runnable: list[Job] = []
    for j in jobs:
        maker = made_by.get(j.src.resolve())
        if maker is not None and maker is not j:
            decided.append(Outcome(str(j.src), None, "skipped", f"an output of {maker.src}"))
            continue
        dst = output_path(j, _guess_format(j.src, fmt), template, scale).resolve()
        first = claimed.setdefault(dst, j)
        if first is not j:
            decided.append(
                Outcome(
                    str(j.src),
                    str(dst),
                    "failed",
                    f"{j.src}: its output {dst} is also {first.src}'s; give -o folders or a --name with {{stem}} "
                    "that tells them apart (nothing was written for it)",
                )
            )
        else:
            runnable.append(j)
    for folder in {output_path(j, "PNG", template, scale).parent for j in runnable}:
        atomic.clean_stale(folder)
    return runnable, decided


@dataclass(frozen=True)
class BatchOptions:
    """What a batch asks of the upscaler and how it writes, checked once by the caller (CLI, API,
    web app) and handed to ``run`` whole."""

    realism: Realism | None = None  # None: the model's default (Upscaler.realism checks a value)
    seed: int = 0
    scale: float | None = None  # output scale; None: the model's
    fmt: str = "same"  # same | png | jpg | webp | tiff
    quality: int = 95  # JPEG / WebP
    template: str = "{stem}_x{scale}.{ext}"
    overwrite: bool = False
    overwrite_inputs: bool = False
    max_pixels: int | None = None  # input decompression-bomb limit; None: imageio's default
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    stream_above: int = STREAM_ABOVE

    def __post_init__(self):
        if self.scale is not None and not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in [1, 100], got {self.quality}")


def run(
    upscaler, jobs: list[Job], options: BatchOptions = BatchOptions(), *, progress: bool = True, log=None
) -> Summary:
    o = options
    log = log or (lambda msg: print(msg, file=sys.stderr))
    summary = Summary()
    t_all = time.perf_counter()
    out_scale = o.scale if o.scale is not None else upscaler.scale
    dial = upscaler.realism(o.realism)  # checked here once, before any file
    jobs, decided = plan(jobs, fmt=o.fmt, template=o.template, scale=out_scale)
    inputs = {j.src.resolve() for j in jobs}  # our own outputs from an earlier run are not inputs
    for d in decided:
        if d.status == "failed":
            log(f"error: {d.message}")
    summary.outcomes += decided
    claimed: dict[Path, Path] = {}
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
                kw = {} if o.max_pixels is None else {"max_pixels": o.max_pixels}
                pic = read_image(job.src, **kw)
            for w in caught:
                log(f"warning: {job.src}: {w.message}")
            if pic.frames > 1:
                log(f"warning: {job.src}: {pic.frames} frames; upscaling the first only")
            fmt_name = output_format(o.fmt, pic.format)
            dst = output_path(job, fmt_name, o.template, out_scale)
            if dst.resolve() in inputs and not o.overwrite_inputs:
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
            other = claimed.setdefault(dst.resolve(), job.src)
            if other != job.src:  # a clash the names did not show (content and extension disagree)
                raise ValueError(f"its output {dst} is also {other}'s; nothing was written for it")
            if dst.exists() and not o.overwrite:
                summary.outcomes.append(Outcome(str(job.src), str(dst), "skipped", "output exists"))
                continue
            w, h = pic.size
            out_w, out_h = max(1, round(w * out_scale)), max(1, round(h * out_scale))
            if out_w * out_h > o.max_output_pixels:
                raise ValueError(
                    f"the output would be {out_w}x{out_h} = {out_w * out_h / 1e6:,.0f} MP, over the limit of "
                    f"{o.max_output_pixels / 1e6:,.0f} MP; raise it with --max-output-pixels"
                )
            stream = (
                out_w * out_h > o.stream_above
                and (o.scale is None or o.scale == upscaler.scale)
                and upscaler.options.colorfix == "none"
            )
            tiles_bar = None
            if bar is not None:
                from snapsr.infer.tiling import count_tiles

                tile, overlap = upscaler.tile_size(stream_width=out_w if stream else None)
                n = count_tiles(h, w, tile, overlap)
                if n > 1:
                    from tqdm import tqdm

                    tiles_bar = tqdm(total=n, unit="tile", leave=False, position=1, file=sys.stderr)
            kw = dict(
                realism=dial,
                seed=o.seed,
                progress=(lambda b=tiles_bar: b.update(1)) if tiles_bar is not None else None,
            )
            try:
                u = upscaler
                for attempt in range(RETRIES + 1):  # out of memory: halve the tile budget and retry
                    try:
                        if stream:  # bands of rows straight to the file: memory bounded whatever the size
                            bands = u.upscale_picture_rows(pic, **kw)
                            write_rows(dst, bands, out_w, out_h, pic, fmt_name, o.quality)
                        else:
                            write_image(dst, u.upscale_picture(pic, scale=o.scale, **kw), fmt_name, o.quality)
                        break
                    except Exception as e:  # noqa: BLE001
                        if attempt == RETRIES or not _out_of_memory(e):
                            raise
                        u = _smaller(u)
                        log(f"warning: {job.src}: out of memory; retrying with --max-memory {u.options.max_memory_mb}")
            finally:
                if tiles_bar is not None:
                    tiles_bar.close()
            summary.outcomes.append(
                Outcome(str(job.src), str(dst), "written", "", time.perf_counter() - t0, w * h / 1e6)
            )
        except (ImageReadError, OSError, ValueError) as e:
            _fail(summary, log, job, dst, str(e))
        except Exception as e:  # noqa: BLE001 - one file's failure, whatever it is, never stops the batch
            if _out_of_memory(e):
                _fail(summary, log, job, dst, "out of memory, also with smaller tiles; try a smaller -s or input")
            else:
                _fail(summary, log, job, dst, f"{type(e).__name__}: {first_line(e)}")
        finally:
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    summary.seconds = time.perf_counter() - t_all
    return summary


RETRIES = 2  # halvings of the tile budget after an out-of-memory error (chaiNNer's auto-split)


def _out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and ("alloc" in text or "out of memory" in text))


def _smaller(upscaler):
    """The same upscaler with half the tile budget (half the tile side when --tile fixed it)."""
    o = upscaler.options
    if o.tile:
        return upscaler.with_options(tile=max(32, o.tile // 2), tile_overlap=min(o.tile_overlap, max(16, o.tile // 8)))
    return upscaler.with_options(max_memory_mb=max(64, o.max_memory_mb // 2))


def _fail(summary: Summary, log, job: Job, dst, message: str) -> None:
    msg = message if str(job.src) in message else f"{job.src}: {message}"
    log(f"error: {msg}")
    summary.outcomes.append(Outcome(str(job.src), str(dst) if dst else None, "failed", msg))
