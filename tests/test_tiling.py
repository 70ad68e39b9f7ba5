import math
import random

import torch

from snapsr.infer import tiling
from snapsr.infer.upscaler import Upscaler


def test_position_noise_is_per_pixel_and_normal():
    full = tiling.position_noise(5, 3, 0, 0, 64, 96)
    part = tiling.position_noise(5, 3, 20, 30, 10, 12)
    assert torch.equal(part, full[..., 20:30, 30:42])
    assert not torch.equal(full, tiling.position_noise(6, 3, 0, 0, 64, 96))
    big = tiling.position_noise(0, 3, 0, 0, 256, 256)
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1) < 0.02
    assert abs(torch.corrcoef(torch.stack([big[0, 0].flatten(), big[0, 1].flatten()]))[0, 1]) < 0.02
    assert tiling.position_noise(2**40 + 3, 1, 0, 0, 4, 4).shape == (1, 1, 4, 4)


def _position_noise_int64(seed, channels, y0, x0, h, w):
    """position_noise written plainly (int64, out of place): the shipped outputs for a given seed
    depend on these exact values (two 16-bit uniforms from one hash, Box-Muller in float32)."""
    import math

    m = 0xFFFFFFFF
    ys = torch.arange(y0, y0 + h).view(1, h, 1)
    xs = torch.arange(x0, x0 + w).view(1, 1, w)
    cs = torch.arange(channels).view(channels, 1, 1)
    hsh = tiling._hash32
    key = hsh(torch.tensor(seed & m) ^ hsh(torch.tensor((seed >> 32) & m) + 0x9E3779B9))
    base = hsh(hsh(hsh(key ^ cs) ^ ys) ^ (xs * 0x27D4EB2F & m))
    h = hsh(base ^ 0x68E31DA4)
    u1 = ((h >> 16).float() + 0.5) / 2**16
    u2 = ((h & 0xFFFF).float() + 0.5) / 2**16
    return (torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)).unsqueeze(0)


def test_position_noise_keeps_its_values():
    for args in [(5, 3, 0, 0, 64, 96), (2**40 + 3, 3, 17, 901, 33, 71), (123456789, 4, 70000, 2000, 20, 30)]:
        assert torch.equal(tiling.position_noise(*args), _position_noise_int64(*args)), args
    # above the CPU's band size the noise is made in bands of rows: the same values
    args = (7, 3, 5, 11, 2 * tiling._BLOCK // (3 * 300) + 7, 300)
    assert torch.equal(tiling.position_noise(*args), _position_noise_int64(*args))


def test_banded_noise_is_the_same_with_any_thread_count():
    """The bands are drawn by a pool of one-thread workers: the values must not depend on it, and
    the caller's thread count must stay as it was."""
    args = (3, 3, 0, 0, 3 * tiling._BLOCK // (3 * 257) + 5, 257)
    want = _position_noise_int64(*args)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            assert torch.equal(tiling.position_noise(*args), want), n
            assert torch.get_num_threads() == n
    finally:
        torch.set_num_threads(threads)


def test_tiles_cover_every_pixel():
    for H, W, tile, ov in [(10, 25, 8, 4), (1, 1, 8, 4), (5, 300, 64, 16), (64, 64, 64, 16), (65, 64, 64, 16)]:
        cover = torch.zeros(H, W)
        for t in tiling.tiles(H, W, tile, ov):
            assert t.h <= max(tile, 1) or tile <= 0
            cover[t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w] += 1
        assert (cover > 0).all()


def test_tiles_are_as_few_and_as_even_as_the_limits_allow():
    """600x800 LR pixels in tiles of at most 597 (overlap 149): four windows of 375x475, not four of
    597x597 (twice the work: a 3-row spill must not cost a second full tile)."""
    got = list(tiling.tiles(600, 800, 597, 149))
    assert {(t.h, t.w) for t in got} == {(375, 475)} and len(got) == 4
    rng = random.Random(0)
    for _ in range(3000):
        tile = rng.randint(1, 300)
        ov = rng.randint(0, tile // 2)
        n = rng.randint(tile + 1, 3000)
        starts, size = tiling.spans(n, tile, ov)
        assert size <= tile and starts[0] == 0 and starts[-1] + size == n
        assert all(size - (b - a) >= ov and b > a for a, b in zip(starts, starts[1:])), (n, tile, ov)
        assert len(starts) == math.ceil((n - ov) / (tile - ov))  # the fewest windows that can do it


def test_blending_of_an_exact_function_is_exact():
    lr = torch.rand(1, 3, 37, 53)
    up = lambda x, t: x.repeat_interleave(2, -1).repeat_interleave(2, -2)  # noqa: E731
    out = tiling.run_tiled(up, lr, 2, tile=16, overlap=6)
    assert torch.allclose(out, up(lr, None), atol=1e-6)


def test_tiled_matches_untiled_with_noise(tiny_weights):
    lr = torch.rand(1, 3, 45, 70)
    full = Upscaler.from_pretrained(tiny_weights, tile=1000).upscale_tensor(lr, realism=1.0, seed=3)
    tiled_up = Upscaler.from_pretrained(tiny_weights, tile=24, tile_overlap=12)
    seen = []
    orig = tiled_up._sr_tile

    def spy(x, t, r, s):
        seen.append(x.shape)
        return orig(x, t, r, s)

    tiled_up._sr_tile = spy
    tiled = tiled_up.upscale_tensor(lr, realism=1.0, seed=3)
    assert len(seen) > 4 and all(s[-1] <= 24 and s[-2] <= 24 for s in seen)  # never the whole image at once
    assert (tiled - full).abs().mean() < 2e-3 and (tiled - full).abs().max() < 0.05
    other_seed = Upscaler.from_pretrained(tiny_weights, tile=1000).upscale_tensor(lr, realism=1.0, seed=4)
    assert (other_seed - full).abs().mean() > 10 * (tiled - full).abs().mean()


def test_any_size(tiny_weights):
    up = Upscaler.from_pretrained(tiny_weights, tile=64, tile_overlap=16)
    for h, w in [(1, 1), (3, 7), (2, 1500)]:
        out = up.upscale_tensor(torch.rand(1, 3, h, w), realism=0.5)
        assert out.shape == (1, 3, 4 * h, 4 * w) and torch.isfinite(out).all()


def test_fused_inference_blocks_match_the_plain_ones():
    """LRNet's inference fast path (oneDNN convolutions with the SiLU and the residual sum fused) against
    the unfused blocks, in float32 and bfloat16, with a FiLM that is not the identity."""
    from snapsr.model.backbones import lrnet

    if lrnet._FUSED is None:
        import pytest

        pytest.skip("this PyTorch build has no oneDNN")
    torch.manual_seed(0)
    net = lrnet.LRNet(lrnet.LRNetConfig(channels=16, blocks=3)).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    x, cond = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    t = torch.full((1, 1, 1, 1), 0.7)
    fused, lrnet._FUSED = lrnet._FUSED, None
    try:
        with torch.no_grad():
            plain = net(x, t, cond)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                plain_bf16 = net(x, t, cond).float()
    finally:
        lrnet._FUSED = fused
    with torch.no_grad():
        assert torch.allclose(net(x, t, cond), plain, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x, t, cond).float()
    # bf16 rounds differently when fused (each convolution's output once, not thrice): no less accurate
    # against float32 than the plain blocks are
    err, plain_err = (out - plain).abs().mean(), (plain_bf16 - plain).abs().mean()
    assert 0 < err < 1.2 * plain_err, (err, plain_err)


def test_pixel_unshuffle_and_shuffle_in_one_pass_give_the_same_bits():
    """LRNet's eager input and output layout changes (strided copies into channels_last and back)
    against the plain cat, pixel_unshuffle and pixel_shuffle, in float32 and bfloat16."""
    import torch.nn.functional as F

    from snapsr.model.backbones import lrnet

    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        x, cond = torch.rand(2, 3, 24, 40, generator=g).to(dtype), torch.rand(2, 3, 24, 40, generator=g).to(dtype)
        u = lrnet.unshuffle_pair(x, cond, 4)
        assert torch.equal(u, F.pixel_unshuffle(torch.cat([x, cond], dim=1), 4))
        assert u.is_contiguous(memory_format=torch.channels_last)
        y = torch.rand(2, 48, 6, 10, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
        out = lrnet.shuffle(y, 4)
        assert torch.equal(out, F.pixel_shuffle(y, 4)) and out.is_contiguous()
