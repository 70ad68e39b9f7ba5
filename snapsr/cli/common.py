"""What several subcommands share."""

from __future__ import annotations

import click


def parse_realism(value: str) -> float | str:
    """A dial value in [0, 1], or ``auto``; anything else is a usage error naming it."""
    if value == "auto":  # the model's estimator decides; Upscaler checks that it has one
        return value
    try:
        v = float(value)
    except ValueError as e:
        raise click.BadParameter(f"not a number: {value!r}") from e
    if not 0.0 <= v <= 1.0:
        raise click.BadParameter(f"must be in [0, 1], got {v}")
    return v
