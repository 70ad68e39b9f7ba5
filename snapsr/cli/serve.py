"""``snapsr serve``: the local web app (pip install 'snapsr[serve]')."""

from __future__ import annotations

import os

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0: every interface).")
@click.option("--port", default=7860, show_default=True, type=int)
@click.option("--max-upload-mb", default=50, show_default=True, type=click.IntRange(1), help="Largest file accepted.")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Largest input, pixels (default: the CLI's).")
@click.option(
    "--max-output-pixels", type=click.IntRange(1), default=100_000_000, show_default=True, help="Largest output."
)
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1), help="Upscales run at once.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"]))
def serve(host, port, max_upload_mb, max_pixels, max_output_pixels, concurrency, device):
    """A local web app: drop images, turn the realism dial, paint it per pixel, compare with
    bicubic on a before/after slider, download the result in its own format with its metadata."""
    try:
        import gradio  # noqa: F401
    except ImportError as e:
        raise click.ClickException("snapsr serve needs Gradio: pip install 'snapsr[serve]'") from e
    import signal

    from snapsr.app import server

    def stop(*_):  # SIGTERM as Ctrl-C: Gradio stops, and the temporary folder is removed below
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    app = server.start(
        host=host,
        port=port,
        max_upload_mb=max_upload_mb,
        max_pixels=max_pixels,
        max_output_pixels=max_output_pixels,
        concurrency=concurrency,
        device=device,
        block=True,
    )
    app.close()
    os._exit(0)  # Gradio's server threads do not always stop on their own
