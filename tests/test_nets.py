"""Every registered backbone under the wrapper's contract (FlowSR.velocity normalises t and pads
once; a backbone sees sides that are multiples of its ``size_multiple`` and t as a map)."""

import pytest
import torch

from snapsr.model import backbones
from snapsr.model.backbones.latent import ONE_STEP_ONLY
from snapsr.model.backbones.lrnet import DialTable
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR

# the velocity backbones; the latent ones (a Stable Diffusion prior) are tests/test_prior.py's
NAMES = [n for n in backbones.names() if n not in ONE_STEP_ONLY]


def wrapped(name: str, scale: int):
    """The backbone ``name`` behind the flow wrapper, without preconditioning: ``velocity`` is ``f``."""
    net = backbones.create(name, scale=scale)
    return net, FlowSR(FlowConfig(scale=scale, backbone=name, precond=False), backbone=net).velocity


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [2, 4])
def test_backbone_forward_backward(name, scale):
    net, f = wrapped(name, scale)
    assert net.size_multiple == scale and net.memory_per_lr_pixel(2) > 0
    for H, W in [(16, 16), (13, 21), (1, 1)]:  # odd sizes and a single pixel
        x = torch.randn(2, 3, H, W, requires_grad=True)
        cond = torch.rand(2, 3, H, W)
        for t in (0.3, torch.tensor([0.1, 0.9]), torch.rand(2, 1, H, W)):
            v = f(x, t, cond)
            assert v.shape == x.shape and v.dtype == x.dtype
            assert torch.isfinite(v).all()
        v.square().mean().backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        net.zero_grad()


@pytest.mark.parametrize("name", NAMES)
def test_backbone_time_forms_agree_and_matter(name):
    net, f = wrapped(name, 2)
    with torch.no_grad():  # make every layer matter (tail and FiLM start at zero)
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, cond = torch.randn(2, 3, 8, 10), torch.rand(2, 3, 8, 10)
    a = f(x, 0.4, cond)
    b = f(x, torch.full((2,), 0.4), cond)
    c = f(x, torch.full((2, 1, 8, 10), 0.4), cond)
    tol = 1e-5 * a.abs().max().item()  # relative: random weights give large outputs
    assert torch.allclose(a, b, atol=tol) and torch.allclose(a, c, atol=tol)
    assert not torch.allclose(a, f(x, 0.9, cond), atol=100 * tol)
    # a per-pixel map changes the output where t differs
    tmap = torch.full((2, 1, 8, 10), 0.4)
    tmap[..., :, 6:] = 0.9
    d = f(x, tmap, cond)
    assert not torch.allclose(a[..., 6:], d[..., 6:], atol=100 * tol)


def test_bf16_autocast_output():
    net = backbones.create("lrnet_t", scale=4)
    x, cond = torch.randn(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = net(x, torch.full((1, 1, 1, 1), 0.5), cond)  # the contract's t
    assert v.dtype == torch.bfloat16 and v.shape == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_inference_fold_matches_training_path(name):
    net = backbones.create(name, scale=4).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x, cond = torch.randn(1, 3, 20, 24), torch.rand(1, 3, 20, 24)
    # A t per LR pixel on the DialTable's grid (4x4 HR pixels each, the extremes included): exact.
    g = torch.Generator().manual_seed(1)
    k = torch.randint(0, DialTable.steps, (1, 1, 5, 6), generator=g)
    k.view(-1)[:2] = torch.tensor([0, DialTable.steps - 1])
    on_grid = (0.25 + 0.5 * k / (DialTable.steps - 1)).repeat_interleave(4, 2).repeat_interleave(4, 3)
    # One t (folded into conv1); a t per pixel (FiLM looked up, in conv1's output pass, conv2 fused with
    # the sum); a continuous map, moved by at most half a grid step (these random weights: 8e-5 at most).
    cases = ((torch.full((1, 1, 1, 1), 0.7), 1e-5), (on_grid, 1e-5), (torch.rand(1, 1, 20, 24, generator=g), 3e-4))
    for t, tol in cases:
        with torch.no_grad():
            folded = net(x, t, cond)
        unfolded = net(x, t, cond)  # grad mode: the plain FiLM path
        assert torch.allclose(folded, unfolded.detach(), atol=tol * unfolded.abs().max().item())


def test_registry_errors():
    with pytest.raises(KeyError, match="unknown backbone"):
        backbones.create("nope", scale=4)
    with pytest.raises(ValueError, match="registered twice"):
        backbones.register("lrnet_s")(lambda scale: None)
    with pytest.raises(TypeError):  # hparams go to the factory, which names what it takes
        backbones.create("lrnet_t", scale=4, depth=3)


def test_wrapper_refuses_bad_time_shapes():
    _, f = wrapped("lrnet_t", 2)
    x = torch.randn(2, 3, 8, 8)
    for bad in (torch.rand(3), torch.rand(2, 2, 8, 8)):
        with pytest.raises(ValueError, match="t "):
            f(x, bad, x)


def test_sizes():
    count = lambda n: sum(p.numel() for p in backbones.create(n, scale=4).parameters())  # noqa: E731
    assert 0.7e6 < count("lrnet_s") < 1.5e6
    assert count("lrnet_b") > 4 * count("lrnet_s")
