"""``snapsr models``: the bundled weights with their cards."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True)
def models(as_json):
    """List the bundled weights with their cards."""
    from snapsr.model import pretrained

    cards = {name: pretrained.card(name) for name in pretrained.available()}
    if as_json:
        click.echo(json.dumps({"default": pretrained.DEFAULT, "models": cards}, indent=2))
        return
    if not cards:
        click.echo("no bundled weights")
    for name, card in cards.items():
        mark = " (default)" if name == pretrained.DEFAULT else ""
        click.echo(f"{name}{mark}")
        for key in (
            "use",
            "kind",
            "recipe",
            "scale",
            "backbone",
            "backbone_args",
            "parameters",
            "steps_trained",
            "samples_seen",
            "train_hours",
            "default_steps",
            "default_realism",
            "train_data",
            "degradation",
            "degradation_mix",
            "lineage",
            "metrics",
            "sha256",
        ):
            value = card.get(key, card.get("flow", {}).get(key))
            if value not in (None, {}, []):
                click.echo(f"  {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
            if key == "default_realism" and (auto := _auto(card)):
                click.echo(f"  auto: {auto}")


def _auto(card: dict) -> str:
    """What ``--realism auto`` does with this model, or "" without an estimator."""
    flow = card.get("flow", {})
    if not flow.get("estimator"):
        return ""
    from snapsr.train.rcod import target_span

    rcod = card.get("rcod") or {}
    smooth = flow.get("estimator_smooth", 0)
    smoothed = f", its map smoothed over {smooth} cells of 4 LR pixels" if smooth > 1 else ""
    if rcod.get("auto_targets") == "matched":
        lo, hi = rcod.get("auto_range", (0.0, 1.0))
        return (
            f"the estimator sets the dial per region, from {lo:.2g} where the output would be more detailed "
            f"than the photo (flat, noisy areas) up to {hi:.2g} where it would be less (texture){smoothed}"
        )
    groups = max(2, rcod.get("groups", 4))
    # the first and the last group's targets: the centres of the span's first and last slices
    a, b = target_span(rcod.get("auto_range", (0.0, 1.0)), groups, rcod.get("auto_targets", "centres"))
    half = (b - a) / (2 * groups)
    lo, hi = a + half, b - half
    noisy = (
        ", lower where noise outweighs the photo's detail (noisy flat areas down to 0)"
        if rcod.get("noise_weight")
        else ""
    )
    return (
        f"the estimator sets the dial per region, about {lo:.2g} (clean input) to {hi:.2g} (most degraded)"
        f"{noisy}{smoothed}"
    )
