"""The ``snapsr`` command line: one entry point, one module per subcommand.

Each module defines its command and imports the heavy parts (torch, the model) only when it
runs, so ``snapsr --help`` and usage errors answer at once.
"""

from __future__ import annotations

import click

from snapsr.cli import bench, degrade, evaluate, export, models, serve, train, upscale


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snapsr")
def main():
    """snapsr: one-step real-world image super-resolution with a fidelity-realism dial."""


for command in (
    upscale.upscale,
    models.models,
    evaluate.eval_cmd,
    degrade.degrade,
    train.train,
    bench.bench,
    export.export,
    serve.serve,
):
    main.add_command(command)


def entry():
    """The ``snapsr`` command: huge pages for large tensors (see ``runtime``), then the commands."""
    from snapsr import runtime

    runtime.enable_hugepages()  # before any command imports torch
    main(prog_name="snapsr")  # under ``python -m snapsr`` click would call itself "python -m snapsr"
