"""``snapsr export``: a run's weights as a shippable model with its card, and/or as ONNX."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click


@click.command()
@click.argument("weights_in", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The .safetensors to write.")
@click.option(
    "--onnx",
    "onnx_path",
    type=click.Path(dir_okay=False),
    help="Also (or only) write the one-step model as ONNX, for onnxruntime and other languages.",
)
@click.option("--metrics", type=click.Path(exists=True, dir_okay=False), help="results.json of snapsr eval.")
@click.option("--eval-command", default=None, help="The command that produced --metrics, for the card.")
@click.option("--default-steps", type=int, default=None)
@click.option(
    "--default-realism",
    default=None,
    help="The dial value upscale, eval and the API use when none is given: a number in [0, 1], or auto "
    "(the model's estimator; needs one). Pick it from benchmarks/quality.sh.",
)
@click.option(
    "--estimator-smooth",
    type=click.IntRange(0, 64),
    default=None,
    help="Smooth auto's map by a box this many estimator cells (4 LR pixels) wide, twice; 0 for none. "
    "Pick it from benchmarks/quality.sh (a model with an estimator).",
)
@click.option("--name", default=None, help="Model name for the card (default: the output's stem).")
@click.option(
    "--use",
    default=None,
    help="When to pick this model, one line for snapsr models (e.g. a fast tier: what it trades for its speed).",
)
def export(
    weights_in, output, onnx_path, metrics, eval_command, default_steps, default_realism, estimator_smooth, name, use
):
    """Write WEIGHTS_IN (e.g. a run's ema.safetensors) as a shippable model with its card (-o), and/or
    as ONNX (--onnx; inputs lr, eps, t, output sr: see snapsr/infer/onnx.py and the README)."""
    from snapsr.config import to_dict
    from snapsr.model import weights as wmod

    if not output and not onnx_path:
        raise click.UsageError("give -o FILE.safetensors, --onnx FILE.onnx, or both")
    try:
        model, card = wmod.load_flow(weights_in)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    card = card.to_dict()
    card.pop("format", None)
    card["name"] = name or Path(output or onnx_path).stem
    card["parameters"] = sum(p.numel() for p in model.parameters())
    lineage = wmod.lineage(card)
    if lineage:  # the stages it was fine-tuned from, each with its own training record
        card["lineage"] = lineage
    if use is not None:
        if not use.strip() or "\n" in use:
            raise click.BadParameter("one line of text", param_hint="--use")
        card["use"] = use.strip()
    if default_steps is not None:
        card["default_steps"] = default_steps
    if default_realism is not None:
        card["default_realism"] = _realism(default_realism, model.cfg.estimator)
    if estimator_smooth is not None:
        if not model.cfg.estimator:
            raise click.BadParameter("these weights have no realism estimator", param_hint="--estimator-smooth")
        model.cfg = dataclasses.replace(model.cfg, estimator_smooth=estimator_smooth)
        card["flow"] = to_dict(model.cfg)
    if metrics:
        data = json.loads(Path(metrics).read_text())
        card["metrics"] = {k: {m: round(v, 4) for m, v in d["mean"].items()} for k, d in data.items()}
        if eval_command:
            card["metrics_command"] = eval_command
    if output:
        wmod.save(output, model, card)
        click.echo(f"wrote {output} ({card['parameters']:,} parameters)")
    if onnx_path:
        from snapsr.infer.onnx import export as export_onnx
        from snapsr.model.card import ModelCard

        try:
            export_onnx(model, ModelCard.parse(card, weights_in), onnx_path)
        except (RuntimeError, ValueError) as e:
            raise click.ClickException(str(e)) from e
        click.echo(f"wrote {onnx_path} (ONNX)")


def _realism(value: str, estimator: bool) -> float | str:
    """``--default-realism`` as the card stores it, checked as every caller's dial is (``Realism.parse``):
    a number in [0, 1], or ``"auto"`` for a model with an estimator."""
    from snapsr.infer.realism import Realism

    try:
        dial = Realism.parse(value, estimator=estimator)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--default-realism") from None
    return "auto" if dial.auto else dial.value
