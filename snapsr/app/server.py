"""Start and stop the app safely: bound to 127.0.0.1 unless told otherwise, uploads and pixels
capped, one queue with a concurrency limit, files served only from the session's own temporary
folder, which is removed on close."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from snapsr import atomic
from snapsr.app.session import Limits, Session
from snapsr.infer.imageio import DEFAULT_MAX_PIXELS

PREFIX = "snapsr-serve-"


def clean_stale(root: str | Path | None = None) -> int:
    """Remove the temporary folders of servers that were killed before they could (their pid gone, or
    no pid file and a day old); returns how many."""
    removed = 0
    for d in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            pid = int((d / "pid").read_text())
            alive = pid != os.getpid() and atomic.alive(pid)
        except (OSError, ValueError):
            alive = time.time() - d.stat().st_mtime < 86400
        if not alive and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    return removed


@dataclass
class Running:
    session: Session
    demo: object  # gr.Blocks
    url: str
    workdir: Path  # the session's outputs and Gradio's uploads and cache: removed on close

    def close(self) -> None:
        try:
            self.demo.close()
        finally:
            self.session.close()
            shutil.rmtree(self.workdir, ignore_errors=True)


def start(
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: int = 50,
    max_pixels: int | None = None,
    max_output_pixels: int = 100_000_000,
    concurrency: int = 1,
    device: str = "cpu",
    block: bool = False,
) -> Running:
    clean_stale()
    workdir = Path(tempfile.mkdtemp(prefix=PREFIX))
    (workdir / "pid").write_text(str(os.getpid()))
    # Gradio keeps uploads and what it serves under GRADIO_TEMP_DIR: ours, so nothing else is served
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from snapsr.app import ui

    limits = Limits(max_pixels or DEFAULT_MAX_PIXELS, max_output_pixels, max_upload_mb)
    session = Session(limits, workdir / "out", device=device)
    demo = ui.build(session)
    demo.queue(default_concurrency_limit=concurrency, max_size=32)
    try:
        _, url, _ = demo.launch(
            server_name=host,
            server_port=port,
            max_file_size=f"{max_upload_mb}mb",
            allowed_paths=[str(session.dir)],
            prevent_thread_lock=not block,
            quiet=not block,
            show_error=True,
        )
    except BaseException:
        session.close()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return Running(session, demo, url, workdir)
