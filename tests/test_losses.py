import pytest
import torch
import torch.nn.functional as F

from snapsr.train.losses.adversarial import (
    PatchDiscriminator,
    UNetDiscriminator,
    d_hinge,
    feature_matching,
    g_hinge,
)
from snapsr.train.losses.hfp import dial_order_loss, haar_bands, hfp_loss, high_band_energy
from snapsr.train.losses.perception import PerceptionConfig, PerceptionLoss
from snapsr.train.losses.pixel import charbonnier, dial_pixel_loss, edge_loss, phase_pattern_loss, sobel
from snapsr.train.losses.texture import local_detail_energy, texture_energy_loss
from tests.conftest import tiny_clip


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma) + 1
    k = torch.exp(-(torch.arange(-r, r + 1).float() ** 2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k, groups=3)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.transpose(-1, -2), groups=3)


def test_charbonnier_and_edges_zero_at_equal_positive_with_gradient_otherwise():
    a = torch.rand(2, 3, 16, 16)
    assert charbonnier(a, a).abs() < 1e-7 and edge_loss(a, a).abs() < 1e-7
    b = (a + 0.1 * torch.randn_like(a)).requires_grad_(True)
    for fn in (charbonnier, edge_loss):
        loss = fn(b, a)
        (g,) = torch.autograd.grad(loss, b)
        assert loss > 0 and g.abs().sum() > 0


def test_dial_pixel_loss_loosens_fine_detail_towards_realism_1_but_keeps_coarse_structure():
    hr = torch.rand(2, 3, 16, 16)
    texture = hr + 0.2 * torch.randn_like(hr)  # other fine detail, same 4x4 means
    texture = texture - F.interpolate(F.avg_pool2d(texture - hr, 4), scale_factor=4, mode="nearest")
    shifted = hr + 0.2  # wrong colours everywhere
    t0, t1 = torch.zeros(2), torch.ones(2)
    kw = dict(at_1=0.25, w_lowpass=1.0, lowpass=4)
    per = charbonnier(texture, hr, per_image=True)
    # realism 0: the plain Charbonnier distance; realism 1: a quarter of it (the texture keeps the 4x4 means)
    assert torch.allclose(dial_pixel_loss(texture, hr, t0, **kw), per.mean())
    assert torch.allclose(dial_pixel_loss(texture, hr, t1, **kw), 0.25 * per.mean(), atol=1e-4)
    # a colour shift is paid in full at realism 1: the low-pass term sees it
    assert dial_pixel_loss(shifted, hr, t1, **kw) > 1.2 * dial_pixel_loss(shifted, hr, t1, at_1=0.25)
    # each image is weighted by its own t
    mixed = dial_pixel_loss(texture, hr, torch.tensor([0.0, 1.0]), at_1=0.25)
    assert torch.allclose(mixed, (per[0] + 0.25 * per[1]) / 2)
    # defaults: the ordinary Charbonnier distance whatever t is
    assert torch.allclose(dial_pixel_loss(texture, hr, t1), charbonnier(texture, hr))


def test_phase_pattern_loss_sees_a_subpixel_grid_not_texture_or_colour():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 128, 128, generator=g)
    texture = hr + 0.1 * torch.randn(hr.shape, generator=g)
    grid = hr.clone()
    grid[..., ::4, 1::4] += 0.1  # one phase of sixteen, everywhere
    assert phase_pattern_loss(hr + 0.2, hr) < 1e-6  # a colour shift is not a pattern
    assert phase_pattern_loss(grid, hr) > 4 * phase_pattern_loss(texture, hr)
    assert phase_pattern_loss(texture[..., :126, :127], hr[..., :126, :127]) > 0  # any size


def test_sobel_sees_edges_not_flat_or_shifted_levels():
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert sobel(flat).abs().max() < 1e-7 and sobel(flat + 0.5).abs().max() < 1e-7
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1
    g = sobel(step)
    assert g.shape == (1, 2, 8, 8) and g[0, 0, :, 3:5].min() > 0 and g[0, 1].abs().max() < 1e-7


def test_haar_is_orthonormal():
    x = torch.rand(1, 3, 8, 10)
    ll, hi = haar_bands(x)
    assert torch.allclose(ll.pow(2).sum() + hi.pow(2).sum(), x.pow(2).sum(), rtol=1e-5)


def test_hfp_zero_for_identical_grows_with_blur():
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 32, 32)
    assert hfp_loss(hr, hr) == 0
    losses = [hfp_loss(blur(hr, s), hr).item() for s in (0.5, 1.0, 2.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    sr = blur(hr, 1.0).requires_grad_(True)
    (g,) = torch.autograd.grad(hfp_loss(sr, hr), sr)
    assert g.abs().sum() > 0


def test_high_band_energy_and_dial_order():
    from snapsr.eval.metrics import hf_energy_ratio, to_uint8_hwc

    torch.manual_seed(0)
    hr = torch.rand(2, 3, 64, 64)
    soft = blur(hr, 1.5)
    e_hr, e_soft = high_band_energy(hr), high_band_energy(soft)
    assert e_hr.shape == (2,) and (e_soft < 0.2 * e_hr).all()
    # Parseval: a pure tone above the cutoff keeps all its energy, a flat image has none
    y = torch.arange(64).float().view(1, 1, -1, 1).expand(1, 1, 64, 64)
    tone = torch.cos(torch.pi * 0.75 * y)  # 0.75 x Nyquist
    assert high_band_energy(tone).item() == pytest.approx(tone.square().mean().item(), rel=1e-4)
    assert high_band_energy(torch.full((1, 3, 16, 16), 0.7)).item() == pytest.approx(0, abs=1e-9)
    # the ratio of energies is the metric's high-frequency ratio (up to 8-bit rounding)
    ratio = (high_band_energy(soft[:1]) / high_band_energy(hr[:1])).item()
    assert ratio == pytest.approx(hf_energy_ratio(to_uint8_hwc(soft[0]), to_uint8_hwc(hr[0]), 4), rel=0.05)
    # the order hinge: zero when detail rises with the dial, positive with a gradient when it falls
    assert dial_order_loss(soft, hr) == 0
    lower = hr.clone().requires_grad_(True)
    value = dial_order_loss(lower, soft)
    assert value > 0.5
    (g,) = torch.autograd.grad(value, lower)
    assert g.abs().sum() > 0


def test_texture_energy_sees_where_detail_is_not_its_phase():
    g = torch.Generator().manual_seed(0)
    flat = torch.full((1, 3, 64, 64), 0.5)
    grain = lambda sigma: sigma * torch.randn(1, 3, 64, 64, generator=g)  # noqa: E731
    # white noise of RMS sigma: sigma^2 in every window at both levels above the x4 LR Nyquist
    maps = local_detail_energy(flat + grain(0.05), scale=4, window=16)
    assert [m.shape[-1] for m in maps] == [4, 4]
    assert all(m.mean().item() == pytest.approx(0.05**2, rel=0.1) for m in maps)
    # left half detailed, right half flat: the ground truth
    hr = flat.clone()
    hr[..., :32] += grain(0.08)[..., :32]
    assert texture_energy_loss(hr, hr) == 0
    other_phase = flat.clone()
    other_phase[..., :32] += grain(0.08)[..., :32]  # the same energy where hr has it, other values
    smooth = blur(hr, 2.0)  # detail lost on the left
    speckled = other_phase + grain(0.04)  # grain on the flat right
    assert texture_energy_loss(other_phase, hr) < 0.1
    assert texture_energy_loss(smooth, hr) > 1.0 and texture_energy_loss(speckled, hr) > 1.0
    # noise far below the floor costs next to nothing
    assert texture_energy_loss(flat + grain(0.001), flat) < 0.02
    x = speckled.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(texture_energy_loss(x, hr), x)
    assert grad[..., 32:].abs().mean() > grad[..., :32].abs().mean()  # it pushes the grain off the flat half
    with pytest.raises(ValueError, match="power of two"):
        local_detail_energy(hr, scale=4, window=12)
    # as a perception term: weighted per image like the others
    p = PerceptionLoss(PerceptionConfig(w_texture=1.0))
    assert p(speckled, hr, hr, step=0, weight=1.0) == pytest.approx(texture_energy_loss(speckled, hr).item(), rel=1e-5)
    assert p(speckled, hr, hr, step=0, weight=0.0) == 0
    # from a dial value on: 0 up to it, then rising to full weight at realism 1, per image
    two, hr2 = torch.cat([speckled, speckled]), torch.cat([hr, hr])
    ramp = PerceptionLoss(PerceptionConfig(w_texture=1.0, texture_from=0.5))
    one = texture_energy_loss(speckled, hr).item()
    assert ramp(two, hr2, hr2, step=0, weight=torch.tensor([0.5, 0.5])) == 0
    assert ramp(two, hr2, hr2, step=0, weight=torch.tensor([1.0, 0.75])).item() == pytest.approx(0.75 * one, rel=1e-5)
    with pytest.raises(ValueError, match="texture_from"):
        PerceptionConfig(w_texture=1.0, texture_from=1.0)


def test_hinge_losses_and_discriminator():
    big = torch.full((4,), 2.0)
    assert d_hinge(big, -big) == 0 and d_hinge(-big, big) == 6
    assert g_hinge(big) == -2
    d = PatchDiscriminator(channels=8, layers=2)
    logits = d(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert logits.shape[0] == 2 and logits.shape[1] == 1 and logits.shape[-1] >= 2


def test_unet_discriminator_gives_a_logit_per_pixel_at_any_size():
    torch.manual_seed(0)
    d = UNetDiscriminator(channels=8)
    for h, w in ((32, 32), (36, 44), (20, 12)):
        x, cond = torch.rand(1, 3, h, w), torch.rand(1, 3, h, w)
        assert d(x, cond).shape == (1, 1, h, w)
    # every convolution but the stem and the last is spectral-normalised (bounded Lipschitz constant)
    normed = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d) and hasattr(m, "parametrizations")]
    assert len(normed) == 3 + 3 + 2
    # a change at one pixel moves the logits near it more than those far away: the map is local
    x, cond = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    y = x.clone()
    y[..., 8, 8] += 0.5
    with torch.no_grad():
        diff = (d(y, cond) - d(x, cond)).abs()[0, 0]
    assert diff[4:13, 4:13].mean() > 5 * diff[40:, 40:].mean()
    p = PerceptionLoss(PerceptionConfig(w_adv=0.1, d_arch="unet", d_channels=8))
    assert isinstance(p.critic, UNetDiscriminator) and not any(q.requires_grad for q in p.critic.parameters())
    with pytest.raises(ValueError, match="d_arch must be one of patch, unet"):
        PerceptionConfig(d_arch="stylegan")


def test_perception_loss_weights_per_image_and_adversarial_ramp():
    cfg = PerceptionConfig(w_hfp=1.0, w_adv=0.5, adv_start=10, adv_ramp=4, d_channels=8)
    p = PerceptionLoss(cfg)
    hr, cond = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    sr = blur(hr, 1.0)
    assert p(sr, hr, cond, step=0, weight=0.0) == 0
    full, half = p(sr, hr, cond, step=0, weight=1.0), p(sr, hr, cond, step=0, weight=torch.tensor([1.0, 0.0]))
    first = p(sr[:1], hr[:1], cond[:1], step=0, weight=1.0)
    assert full > 0 and torch.allclose(half, 0.5 * first)  # only the weighted image, at its share
    quarter = p(sr, hr, cond, step=0, weight=torch.tensor([0.5, 0.0]))
    assert torch.allclose(quarter, 0.25 * first)
    assert [p.adv_weight(k) for k in (9, 10, 13, 100)] == [0.0, 0.125, 0.5, 0.5]
    # the critic stays frozen while the generator's loss is computed
    assert not any(q.requires_grad for q in p.critic.parameters())
    p(sr.requires_grad_(True), hr, cond, step=20).backward()
    assert all(q.grad is None for q in p.critic.parameters())


@pytest.mark.parametrize("arch", ["patch", "unet"])
def test_feature_matching_pulls_the_output_to_the_ground_truth_in_the_critics_features(arch):
    torch.manual_seed(0)
    p = PerceptionLoss(PerceptionConfig(w_fm=1.0, d_arch=arch, d_channels=8, adv_start=2, adv_ramp=2))
    assert p.critic is not None and p.adv_weight(10) == 0  # the critic exists for it alone
    hr, cond = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    logits, feats = p.critic.eval()(hr, cond, features=True)  # eval: spectral norm's power step holds still
    assert torch.equal(logits, p.critic(hr, cond)) and len(feats) >= 3
    p.critic.train()
    assert p(hr, hr, cond, step=10) == 0  # the ground truth matches itself
    assert p(blur(hr, 1.0), hr, cond, step=1) == 0  # not before adv_start
    sr = blur(hr, 1.0).requires_grad_(True)
    early, late = p(sr, hr, cond, step=2), p(sr, hr, cond, step=10)
    assert late > 0 and torch.allclose(early, 0.5 * late, rtol=0.02)  # on the ramp (power steps move it a little)
    late.backward()
    assert sr.grad.abs().sum() > 0 and all(q.grad is None for q in p.critic.parameters())
    # a step along the gradient brings the output closer to the ground truth in feature space
    with torch.no_grad():
        assert p(sr - 50 * sr.grad, hr, cond, step=10) < late
    with pytest.raises(ValueError, match="matching non-empty"):
        feature_matching(feats[:2], feats)


def test_missing_local_weights_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="lpips_dir"):
        PerceptionLoss(PerceptionConfig(w_lpips=1.0))
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        PerceptionLoss(PerceptionConfig(w_lpips=1.0, lpips_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="clip_path"):
        PerceptionLoss(PerceptionConfig(w_semantic=1.0))
    with pytest.raises(FileNotFoundError, match="not a CLIP folder"):
        PerceptionLoss(PerceptionConfig(w_semantic=1.0, clip_path=str(tmp_path / "nowhere")))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        PerceptionLoss(PerceptionConfig(w_semantic=1.0, clip_path=str(tmp_path)))


def test_semantic_supervision_with_a_tiny_random_clip(tmp_path):
    p = PerceptionLoss(PerceptionConfig(w_semantic=1.0, clip_path=tiny_clip(tmp_path / "clip")))
    hr, cond = torch.rand(2, 3, 40, 40), torch.rand(2, 3, 40, 40)
    assert p(hr, hr, cond, step=0).abs() < 1e-5
    sr = torch.rand(2, 3, 40, 40, requires_grad=True)
    loss = p(sr, hr, cond, step=0)
    loss.backward()
    assert loss > 0 and sr.grad.abs().sum() > 0
    assert not any(q.requires_grad for q in p.semantic.parameters())


def test_usm_target_sharpens_edges_by_the_amount_per_image_and_leaves_flat_areas_alone():
    from snapsr.train.sharpen import gaussian_blur, usm_sharpen

    img = torch.full((2, 3, 64, 64), 0.3)
    img[..., 32:] = 0.7  # a step edge on a flat field
    img[..., :8, :8] += 0.01 * torch.randn(2, 3, 8, 8)  # faint noise in a flat corner, under the threshold
    out = usm_sharpen(img, torch.tensor([0.0, 0.5]))
    assert torch.equal(out[0], img[0])  # amount 0: the ground truth itself
    # the edge overshoots on both sides (a crisper step), the flat corner's noise is not amplified
    assert out[1, :, :, 30].mean() < 0.3 - 0.02 and out[1, :, :, 33].mean() > 0.7 + 0.02
    assert torch.allclose(out[1, :, :8, :8], img[1, :, :8, :8], atol=1e-3)
    assert out.min() >= 0 and out.max() <= 1
    # the blur keeps a constant image and its mean, also with a kernel wider than the image
    flat = torch.full((1, 1, 5, 5), 0.4)
    assert torch.allclose(gaussian_blur(flat, 8.0), flat)
