"""snapsr: one-step real-world image super-resolution with a fidelity-realism dial."""

__version__ = "0.1.0"
