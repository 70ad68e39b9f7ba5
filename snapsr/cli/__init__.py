"""The ``snapsr`` command line: one entry point, one module per subcommand.

Each module defines its command and imports the heavy parts (torch, the model) only when it
runs, so ``snapsr --help`` and usage errors answer at once.
"""

from __future__ import annotations

import click

from snapsr.cli import bench, degrade, evaluate, export, models, serve, train, upscale


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snapsr")
@click.pass_context
def main(ctx):
    """snapsr: one-step real-world image super-resolution with a fidelity-realism dial."""
    if ctx.invoked_subcommand != "upscale":  # upscale asks from its images' sizes (runtime.HUGEPAGES_FROM)
        from snapsr import runtime

        runtime.enable_hugepages()  # before the command imports torch


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
    """The ``snapsr`` command, ended without the interpreter's teardown where a command asks
    (``runtime.exit_quickly``)."""
    from snapsr import runtime

    try:
        main(prog_name="snapsr")  # under ``python -m snapsr`` click would call itself "python -m snapsr"
    except SystemExit as e:  # click ends every command with sys.exit
        if runtime.quick_exit_requested():
            runtime.quick_exit(e.code)  # without torch's 0.3-0.4 s teardown (runtime.exit_quickly)
        raise
