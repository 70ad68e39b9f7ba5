"""The page of ``snapsr serve`` (Gradio): drop images, turn the dial, paint it, compare, download.

Layout and events only; what each button does is ``session.Session``. Every element a test
drives has an ``elem_id`` (``snapsr-...``).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from snapsr.app.session import Session, Settings
from snapsr.errors import first_line
from snapsr.infer.imageio import ImageReadError
from snapsr.model import pretrained, weights
from snapsr.model.card import ModelCard

HELP = """**snapsr**: one-step x4 super-resolution with a fidelity-realism dial. Drop images, pick one,
turn the dial (0 faithful, 1 inventive) and watch the preview (the centre crop); paint on the
picture to set the dial per pixel (**black** faithful, for faces and text; **white** inventive, for
foliage; grey between), or start from the estimator's map. **Upscale** runs the whole picture and
offers it for download in its own format, with its colour profile and EXIF."""
BRUSH = ["#000000", "#808080", "#ffffff"]  # faithful, between, inventive


def build(session: Session) -> gr.Blocks:
    models = pretrained.available()
    cache: dict[str, object] = {}  # file path -> Picture (the few files of this server's users)

    def picture(path: str):
        if path not in cache:
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[path] = session.load(path)
        return cache[path]

    def settings(model, realism, auto, scale, colorfix, seed, temperature) -> Settings:
        return Settings(
            model=model,
            realism=float(realism),
            auto=bool(auto),
            scale=None if scale == "model" else float(scale),
            colorfix=colorfix,
            seed=int(seed or 0),
            temperature=float(temperature),
        )

    def guard(fn):
        """The CLI's one-line errors, shown on the page instead of a traceback."""

        def run(*args, **kw):
            try:
                return fn(*args, **kw)
            except (ImageReadError, ValueError, FileNotFoundError, RuntimeError) as e:
                raise gr.Error(first_line(e, 300)) from None

        return run

    with gr.Blocks(title="snapsr") as demo:
        gr.Markdown(HELP)
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(
                    file_count="multiple", file_types=["image"], label="Images (drag and drop)", elem_id="snapsr-files"
                )
                choice = gr.Dropdown(label="Image to work on", choices=[], elem_id="snapsr-choice")
                model = gr.Dropdown(models, value=pretrained.DEFAULT, label="Model", elem_id="snapsr-model")
                start, start_auto = dial_default(pretrained.DEFAULT)
                realism = gr.Slider(0, 1, value=start, step=0.05, label="Realism", elem_id="snapsr-realism")
                auto = gr.Checkbox(
                    value=start_auto, label="auto (the estimator sets the dial per region)", elem_id="snapsr-auto"
                )
                temperature = gr.Slider(
                    0,
                    1,
                    value=1,
                    step=0.05,
                    label="Noise temperature (below 1: less grain at high realism)",
                    elem_id="snapsr-temperature",
                )
                with gr.Row():
                    scale = gr.Dropdown(["model", "2", "3", "4"], value="model", label="Scale", elem_id="snapsr-scale")
                    colorfix = gr.Dropdown(["none", "wavelet", "adain"], value="none", label="Colour fix")
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="snapsr-seed")
                with gr.Row():
                    estimate = gr.Button("Estimator's map", elem_id="snapsr-estimate")
                    run = gr.Button("Upscale", variant="primary", elem_id="snapsr-run")
                    run_all = gr.Button("Upscale all", elem_id="snapsr-run-all")
            with gr.Column(scale=2):
                editor = gr.ImageEditor(
                    type="numpy",
                    image_mode="RGBA",
                    sources=(),
                    brush=gr.Brush(
                        colors=["#000000", "#808080", "#ffffff"], default_color="#ffffff", color_mode="fixed"
                    ),
                    layers=gr.LayerOptions(allow_additional_layers=False),
                    transforms=(),
                    label="Paint the dial: black faithful, white inventive",
                    elem_id="snapsr-editor",
                )
                compare = gr.ImageSlider(label="bicubic | snapsr", type="numpy", elem_id="snapsr-compare")
                with gr.Row():
                    loupe_x = gr.Slider(0, 100, value=50, step=1, label="Loupe across (%)", elem_id="snapsr-loupe-x")
                    loupe_y = gr.Slider(0, 100, value=50, step=1, label="Loupe down (%)", elem_id="snapsr-loupe-y")
                loupe = gr.Image(label="Loupe: bicubic | snapsr, 4x", type="numpy", height=280, elem_id="snapsr-loupe")
                info = gr.Markdown(elem_id="snapsr-info")  # the preview's
                result = gr.Markdown(elem_id="snapsr-result")  # the last whole-picture upscale's
                download = gr.File(label="Download", file_count="multiple", elem_id="snapsr-download")
        controls = [model, realism, auto, scale, colorfix, seed, temperature]

        @guard
        def on_files(paths):
            paths = [str(p) for p in paths or []]
            first = paths[0] if paths else None
            names = [(Path(p).name, p) for p in paths]
            return gr.update(choices=names, value=first)

        @guard
        def on_choice(path):
            if not path:
                return None
            return {"background": session.editor_image(picture(path)), "layers": [], "composite": None}

        @guard
        def on_preview(path, layers_value, *ctl):
            if not path:
                return gr.update(), ""
            res = session.preview(picture(path), settings(*ctl), _layers(layers_value))
            return (res.before, res.after), f"preview (centre crop), realism {res.dial}: {res.seconds:.2f} s"

        @guard
        def on_estimate(path, *ctl):
            if not path:
                raise ValueError("drop an image first")
            bg = session.editor_image(picture(path))
            layer = session.estimator_layer(picture(path), settings(*ctl), (bg.shape[1], bg.shape[0]))
            return {"background": bg, "layers": [layer], "composite": None}

        @guard
        def on_run(path, layers_value, *ctl, progress=gr.Progress()):
            if not path:
                raise ValueError("drop an image first")
            pic = picture(path)
            res = session.upscale(pic, settings(*ctl), _layers(layers_value), Path(path).name, _tiles(progress))
            (w, h), (W, H) = pic.size, res.after.shape[1::-1]
            text = f"{w}x{h} -> {W}x{H} in {res.seconds:.1f} s ({ctl[0]}, realism {res.dial})"
            return (res.before, res.after), text, [str(res.path)]

        @guard
        def on_run_all(paths, *ctl, progress=gr.Progress()):
            out, total = [], 0.0
            for p in [str(p) for p in paths or []]:
                res = session.upscale(picture(p), settings(*ctl), None, Path(p).name, _tiles(progress))
                out.append(str(res.path))
                total += res.seconds
            return f"{len(out)} images in {total:.1f} s (the painted map applies to one image: Upscale)", out

        @guard
        def on_model(name):
            value, is_auto = dial_default(name)
            return gr.update(value=value), gr.update(value=is_auto)

        one = {"concurrency_id": "upscale"}  # previews and upscales share one queue, in order
        model.input(on_model, model, [realism, auto])  # a model starts at its own default dial
        realism.input(lambda: False, None, auto)  # moving the slider asks for that value, not the estimator's
        files.change(on_files, files, choice)
        choice.change(on_choice, choice, editor).then(on_preview, [choice, editor, *controls], [compare, info], **one)
        for c in controls:  # always_last: a dragged slider previews its end
            c.change(on_preview, [choice, editor, *controls], [compare, info], trigger_mode="always_last", **one)
        editor.change(on_preview, [choice, editor, *controls], [compare, info], trigger_mode="always_last", **one)
        estimate.click(on_estimate, [choice, *controls], editor, **one).then(
            on_preview, [choice, editor, *controls], [compare, info], **one
        )

        def on_loupe(value, px, py):
            if not value or value[0] is None or value[1] is None:
                return None
            h, w = value[1].shape[:2]
            return loupe_view(value[0], value[1], round(w * px / 100), round(h * py / 100))

        for c in (compare, loupe_x, loupe_y):
            c.change(on_loupe, [compare, loupe_x, loupe_y], loupe, trigger_mode="always_last")
        run.click(on_run, [choice, editor, *controls], [compare, result, download], concurrency_id="upscale")
        run_all.click(on_run_all, [files, *controls], [result, download], concurrency_id="upscale")
    return demo


def dial_default(name: str) -> tuple[float, bool]:
    """Where the page's dial starts for a model: its card's default value, or the estimator (auto on,
    the slider at the middle) when the card says ``auto``."""
    value = ModelCard.parse(weights.read_card(pretrained.resolve(name)), name).default_realism
    return (0.5, True) if value == "auto" else (value, False)


def loupe_view(before, after, x: int, y: int, side: int = 64, zoom: int = 4):
    """``side`` pixels around ``(x, y)`` of both images, side by side, enlarged ``zoom`` times
    (nearest neighbour: the pixels as they are)."""
    import numpy as np

    h, w = after.shape[:2]
    x0, y0 = min(max(0, x - side // 2), max(0, w - side)), min(max(0, y - side // 2), max(0, h - side))
    crops = [np.asarray(im)[y0 : y0 + side, x0 : x0 + side, :3] for im in (before, after)]
    gap = np.full((crops[0].shape[0], 2, 3), 255, np.uint8)
    both = np.concatenate([crops[0], gap, crops[1]], axis=1)
    return both.repeat(zoom, axis=0).repeat(zoom, axis=1)


def _layers(value) -> list | None:
    """The painted layers of the editor's value (a dict; None before an image is loaded)."""
    return list(value.get("layers") or []) if isinstance(value, dict) else None


def _tiles(progress):
    """A tile counter for ``gr.Progress`` (the upscaler calls it once per finished tile)."""
    done = [0]

    def tick():
        done[0] += 1
        progress(None, desc=f"{done[0]} tiles")

    return tick
