"""``snapsr train``: every recipe is looked up by name in ``snapsr.train.recipes``' registry."""

from __future__ import annotations

import json
import sys

import click

from snapsr.errors import first_line

_COMMON = [
    click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="TOML or JSON config."),
    click.option("--resume", is_flag=True, help="Continue from OUT_DIR/checkpoint.pt if it exists."),
    click.option("--dry-run", is_flag=True, help="Print the resolved config and exit."),
    click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda"),
    click.argument("overrides", nargs=-1),
]


def _options(fn):
    for option in reversed(_COMMON):
        fn = option(fn)
    return fn


@click.group()
def train():
    """Train a model: the flow teacher, or a one-step student (snapsr train list: every recipe)."""


@train.command("list")
def list_cmd():
    """The registered recipes, with their run configs."""
    from snapsr.train import recipes

    for name in recipes.names():
        spec = recipes.get(name)
        click.echo(f"{name:8s} {spec.summary} [{spec.config.__name__}]")


@train.command("teacher")
@_options
def train_teacher_cmd(config_path, resume, dry_run, device, overrides):
    """Train the flow-matching teacher. OVERRIDES are key=value, e.g. train.steps=1000 flow.backbone=lrnet_b."""
    _run_training("teacher", config_path, overrides, dry_run, resume=resume, device=device)


@train.command("distill")
@click.option(
    "--recipe",
    default="oftsr",
    show_default=True,
    help="A student recipe: oftsr (distil a teacher's trajectory), gtasr (consistency training from data), "
    "rcod (degradation-grouped pairs, visual prompts, the estimator), vpd (OFTSR with CLIP, HFP and "
    "adversarial terms), estimator (a trained student's realism estimator alone); snapsr train list.",
)
@_options
def train_distill_cmd(recipe, config_path, resume, dry_run, device, overrides):
    """Train a one-step student whose time input is the realism dial.

    oftsr and vpd need teacher=PATH (config or override); gtasr and rcod train from data, optionally
    from init=PATH. RCOD's parts (rcod.*) and VPD-SR's terms (perception.*) work with every student.
    """
    if recipe == "teacher":
        raise click.BadParameter("the teacher is not a student: snapsr train teacher", param_hint="--recipe")
    _run_training(recipe, config_path, overrides, dry_run, resume=resume, device=device)


@train.command("bank")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="The run config whose data.peer_bank to fill (its train_dir, multiscale, degrade.*, seed).",
)
@click.option(
    "--passes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Degradations of every tile; a killed or shorter build resumes, a larger number adds passes.",
)
@click.option("--peer", default="realesrgan-x4plus", show_default=True, help="The upscaler whose outputs to keep.")
@click.argument("overrides", nargs=-1)
def bank_cmd(config_path, passes, peer, overrides):
    """Build a peer bank: degraded tiles of the training photos and another upscaler's output on each
    (Real-ESRGAN x4plus, the bench extra), the realistic-end target of a gtasr run with data.peer_bank."""
    from snapsr.config import load
    from snapsr.eval.peers import PEERS
    from snapsr.train import recipes
    from snapsr.train.peer_bank import build_bank

    try:
        cfg = load(recipes.get("gtasr").config, config_path, overrides)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if not cfg.data.peer_bank:
        raise click.UsageError(f"{config_path} sets no data.peer_bank folder")
    if peer not in PEERS:
        raise click.BadParameter(f"unknown peer {peer!r}; known: {', '.join(PEERS)}", param_hint="--peer")
    label, make = PEERS[peer]
    try:
        model = make()
    except RuntimeError as e:
        raise click.ClickException(first_line(e)) from e
    try:
        n = build_bank(
            cfg.data.train_dir,
            cfg.data.peer_bank,
            scale=model.scale,
            degrade_cfg=cfg.degrade,
            peer=model,
            peer_name=label,
            passes=passes,
            multiscale=cfg.data.multiscale,
            seed=cfg.train.seed,
        )
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(first_line(e)) from e
    click.echo(f"{n} new pairs of {label} in {cfg.data.peer_bank}")


def _run_training(name: str, config_path, overrides, dry_run: bool, **kw) -> None:
    """Resolve the recipe's config (defaults, file, overrides), print it on --dry-run, else train;
    exit 130 on a signal."""
    from snapsr.config import load, to_dict
    from snapsr.train import recipes

    try:
        spec = recipes.get(name)
        cfg = load(spec.config, config_path, overrides)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if getattr(cfg, "recipe", name) != name:
        raise click.UsageError(f"{config_path} is a config of the {cfg.recipe!r} recipe, not {name!r}")
    if dry_run:
        click.echo(json.dumps(to_dict(cfg), indent=2))
        return
    try:
        res = spec.train(cfg, **kw)
    except FileNotFoundError as e:  # data, init weights, a local perception network
        raise click.ClickException(str(e)) from e
    except ValueError as e:  # damaged weights or checkpoint, a config the recipe cannot run
        raise click.ClickException(first_line(e)) from e
    if res.stopped_by_signal:
        sys.exit(130)
