"""ODE samplers for a velocity field, all with one signature, so one-step and
multi-step sampling are interchangeable (as in k-diffusion's ``sampling.py``).

``model(x, t, cond) -> v``; ``ts`` is an increasing sequence of times from the
start state's time to the end time (``[0, 1]`` is one Euler step). A time may
also be a per-pixel map broadcastable against ``x``. ``callback`` receives a dict of what the
step knew (k-diffusion's convention): ``i``, ``t``, the state ``x`` before the step, its velocity
``v``, ``denoised`` (the HR end predicted from it, ``x + (1 - t) v``) and ``x_next``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _t(value, x: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


def sample_euler(model: Velocity, x: torch.Tensor, ts: Sequence, *, cond: torch.Tensor, callback=None):
    for i in range(len(ts) - 1):
        t, s = _t(ts[i], x), _t(ts[i + 1], x)
        v = model(x, t, cond)
        x_next = x + _dt(s, t, x) * v
        if callback is not None:
            callback(_step(i, t, x, v, x_next))
        x = x_next
    return x


def sample_heun(model: Velocity, x: torch.Tensor, ts: Sequence, *, cond: torch.Tensor, callback=None):
    """Heun's method (explicit trapezoid, RK2): two velocity evaluations per step."""
    for i in range(len(ts) - 1):
        t, s = _t(ts[i], x), _t(ts[i + 1], x)
        dt = _dt(s, t, x)
        v = model(x, t, cond)
        x_euler = x + dt * v
        v_next = model(x_euler, s, cond)
        x_next = x + dt * 0.5 * (v + v_next)
        if callback is not None:
            callback(_step(i, t, x, v, x_next))
        x = x_next
    return x


def _step(i: int, t: torch.Tensor, x: torch.Tensor, v: torch.Tensor, x_next: torch.Tensor) -> dict:
    return {"i": i, "t": t, "x": x, "v": v, "denoised": x + _dt(torch.ones_like(t), t, x) * v, "x_next": x_next}


def _dt(s: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    d = s - t
    return d.view(-1, *([1] * (x.ndim - 1))) if d.ndim == 1 else d


SAMPLERS: dict[str, Callable] = {"euler": sample_euler, "heun": sample_heun}


def time_grid(steps: int, t_end: float = 1.0, t_start: float = 0.0) -> list[float]:
    return torch.linspace(t_start, t_end, steps + 1).tolist()
