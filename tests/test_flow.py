import math

import pytest
import torch
import torch.nn as nn

from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR, upsample
from snapsr.model.path import LinearPath
from snapsr.model.samplers import SAMPLERS, sample_euler, sample_heun, time_grid


class ConstantVelocity(nn.Module):
    size_multiple = 1  # the backbone contract (snapsr/model/backbones/registry.py)

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x_t, t, cond):
        return torch.full_like(x_t, self.c)


class OracleToTarget(nn.Module):
    """v(x_t, t) = (x_1 - x_t) / (1 - t): the straight line to a fixed x_1, so Euler is exact."""

    size_multiple = 1

    def __init__(self, x_1):
        super().__init__()
        self.x_1 = x_1

    def forward(self, x_t, t, cond):
        t = torch.as_tensor(t).view(-1, 1, 1, 1)
        return (self.x_1 - x_t) / (1 - t).clamp_min(1e-6)


def test_path_endpoints_and_velocity():
    x_0, x_1 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    p = LinearPath()
    assert torch.allclose(p.sample(x_0=x_0, x_1=x_1, t=0.0).x_t, x_0)
    assert torch.allclose(p.sample(x_0=x_0, x_1=x_1, t=1.0).x_t, x_1)
    ps = p.sample(x_0=x_0, x_1=x_1, t=torch.tensor([0.25, 0.75]))
    assert torch.allclose(ps.x_t[0], 0.75 * x_0[0] + 0.25 * x_1[0])
    assert torch.allclose(ps.dx_t, x_1 - x_0)
    tmap = torch.rand(2, 1, 4, 4)
    assert torch.allclose(p.sample(x_0=x_0, x_1=x_1, t=tmap).x_t, tmap * x_1 + (1 - tmap) * x_0)


def test_constant_velocity_one_step_is_exact():
    flow = FlowSR(FlowConfig(scale=2, sigma_p=0.3, precond=False), backbone=ConstantVelocity(0.25))
    lr = torch.rand(1, 3, 5, 7)
    eps = torch.randn(1, 3, 10, 14)
    cond = upsample(lr, 2)
    x_0 = math.sqrt(1 - 0.09) * cond + 0.3 * eps
    for name in SAMPLERS:
        out = flow.sample(lr, steps=1, sampler=name, eps=eps)
        assert torch.allclose(out, x_0 + 0.25, atol=1e-6), name


def test_straight_line_field_reaches_target_in_one_step():
    x_1 = torch.rand(1, 3, 8, 8)
    flow = FlowSR(FlowConfig(scale=2, precond=False), backbone=OracleToTarget(x_1))
    out = flow.sample(torch.rand(1, 3, 4, 4), steps=1)
    assert torch.allclose(out, x_1, atol=1e-5)


@pytest.mark.parametrize("sampler,order", [(sample_euler, 1), (sample_heun, 2)])
def test_samplers_converge_on_linear_ode(sampler, order):
    a = -1.3  # dx/dt = a x  =>  x(1) = x(0) e^a
    x0 = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    exact = x0 * math.exp(a)
    errs = []
    for n in (4, 8, 16, 32):
        out = sampler(lambda x, t, c: a * x, x0, time_grid(n), cond=None)
        errs.append((out - exact).abs().max().item())
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:]))
    ratios = [e1 / e2 for e1, e2 in zip(errs, errs[1:])]
    assert all(abs(r - 2**order) < 0.5 * 2**order for r in ratios), ratios
    assert errs[-1] < (5e-2 if order == 1 else 1e-3)


def test_sampler_accepts_per_pixel_time():
    x = torch.zeros(1, 1, 2, 2)
    t_end = torch.tensor([[0.5, 1.0], [0.25, 0.0]]).view(1, 1, 2, 2)
    out = sample_euler(lambda x, t, c: torch.ones_like(x), x, [torch.zeros_like(t_end), t_end], cond=None)
    assert torch.allclose(out, t_end)


def test_start_state_and_loss():
    flow = FlowSR(FlowConfig(scale=4, sigma_p=0.5, backbone="lrnet_t"))
    cond, eps = torch.rand(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    assert torch.allclose(flow.start(cond, eps), math.sqrt(0.75) * cond + 0.5 * eps)
    lr, hr = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    loss = flow.loss(lr, hr, generator=g)
    loss.backward()
    assert loss.item() > 0 and math.isfinite(loss.item())
    # the zero-initialised output layer predicts v = 0, so the loss starts at E||x_1 - x_0||^2
    g = torch.Generator().manual_seed(1)
    eps = torch.randn(hr.shape, generator=g)
    expected = ((hr - flow.start(upsample(lr, 4), eps)) ** 2).mean()
    fresh = FlowSR(FlowConfig(scale=4, sigma_p=0.5, backbone="lrnet_t", precond=False))
    assert torch.allclose(fresh.loss(lr, hr, eps=eps, t=torch.rand(2)), expected, rtol=1e-5)


def test_preconditioning():
    d, s = 0.1, 0.3
    flow = FlowSR(FlowConfig(scale=2, sigma_p=s, sigma_data=d), backbone=ConstantVelocity(1.0))
    c_skip, c_out, c_in = flow.precond(torch.tensor([0.0, 1.0]))
    # t = 0: x_t = x_0, so v = r - sigma_p eps = r - y exactly up to r: c_skip = -1, c_out = sigma_data
    assert torch.allclose(c_skip, torch.tensor([-1.0, 1.0]))
    assert torch.allclose(c_out, torch.tensor([d, s]))
    assert torch.allclose(c_in, torch.tensor([1 / s, 1 / d]))
    # the velocity is c_skip y + c_out f(c_in y): check it on a per-pixel t map
    x_t, cond = torch.randn(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    t = torch.rand(1, 1, 4, 4)
    c_skip, c_out, _ = flow.precond(t)
    y = x_t - math.sqrt(1 - s * s) * cond
    assert torch.allclose(flow.velocity(x_t, t, cond), c_skip * y + c_out, atol=1e-6)
    # and c_skip is the least-squares linear predictor: on simulated (r, eps) it beats other gains
    g = torch.Generator().manual_seed(0)
    r, eps = d * torch.randn(200000, generator=g), torch.randn(200000, generator=g)
    for tv in (0.2, 0.5, 0.9):
        yv, vv = tv * r + (1 - tv) * s * eps, r - s * eps
        cs = flow.precond(torch.tensor(tv))[0]
        best = ((vv - cs * yv) ** 2).mean()
        assert best <= ((vv - 1.05 * cs * yv) ** 2).mean() and best <= ((vv - 0.95 * cs * yv) ** 2).mean()
        assert abs(best.sqrt() - flow.precond(torch.tensor(tv))[1]) < 2e-3


def test_one_step_preconditioning_takes_the_start_noise_away_at_every_dial_value():
    """A one-step student's state is x_0 alone, y = sigma_p eps at every t: its skip is -y, so with the
    backbone's output fixed the result holds no noise, where EDM's skip at t = 1 adds the noise again."""
    d, s = 0.1, 0.3
    one = FlowConfig(scale=2, sigma_p=s, sigma_data=d, one_step_precond=True)
    student = FlowSR(one, backbone=ConstantVelocity(1.0))
    edm = FlowSR(FlowConfig(scale=2, sigma_p=s, sigma_data=d), backbone=ConstantVelocity(1.0))
    cond = torch.rand(1, 3, 4, 4)
    eps = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x_0 = student.start(cond, eps)
    a = math.sqrt(1 - s * s)
    for t in (0.0, 0.5, 1.0, torch.rand(1, 1, 4, 4)):
        assert torch.allclose(student.one_step(x_0, t, cond), a * cond + d, atol=1e-6)
    # the two agree at realism 0; at 1 EDM's output carries twice the start noise for the backbone to cancel
    assert torch.allclose(student.one_step(x_0, 0.0, cond), edm.one_step(x_0, 0.0, cond), atol=1e-6)
    assert torch.allclose(edm.one_step(x_0, 1.0, cond), a * cond + 2 * s * eps + s, atol=1e-5)
    # its weights run in one step only: any other state or a multi-step sampler is refused
    with pytest.raises(ValueError, match="one step"):
        student.velocity(x_0, 0.5, cond)
    with pytest.raises(ValueError, match="one step"):
        student.at_realism(x_0, 1.0, cond, one_step=False, steps=4)
    with pytest.raises(ValueError, match="one-step students"):
        student.loss(torch.rand(1, 3, 2, 2), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="one_step_precond"):
        FlowConfig(one_step_precond=True, precond=False)


def test_bad_sigma_and_sampler():
    with pytest.raises(ValueError):
        FlowSR(FlowConfig(sigma_p=1.0, backbone="lrnet_t"))
    flow = FlowSR(FlowConfig(backbone="lrnet_t"))
    with pytest.raises(ValueError, match="unknown sampler"):
        flow.sample(torch.rand(1, 3, 4, 4), sampler="dpm")
