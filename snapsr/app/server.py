"""Start and stop the app safely: bound to 127.0.0.1 unless told otherwise, uploads and pixels
capped, one queue with a concurrency limit, files served only from the session's own temporary
folder, which is removed on close."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from snapsr.app.session import Limits, Session
from snapsr.infer.imageio import DEFAULT_MAX_PIXELS


@dataclass
class Running:
    session: Session
    demo: object  # gr.Blocks
    url: str

    def close(self) -> None:
        try:
            self.demo.close()
        finally:
            self.session.close()


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
    workdir = Path(tempfile.mkdtemp(prefix="snapsr-serve-"))
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
        raise
    return Running(session, demo, url)
