"""Our DISTS against the reference code and published alpha/beta of the DISTS_pytorch 0.1 wheel
(set SNAPSR_DISTS_WHEEL; .ci/run fetches it from PyPI). The reference needs torchvision for its
VGG16, so a stub hands it the same randomly initialised full-width VGG16 that ours loads."""

import os
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch

from .conftest import smooth_image

WHEEL = os.environ.get("SNAPSR_DISTS_WHEEL", "")
pytestmark = pytest.mark.skipif(
    not WHEEL or not Path(WHEEL).exists(), reason="set SNAPSR_DISTS_WHEEL to DISTS_pytorch 0.1's wheel (.ci/run does)"
)


def test_dists_matches_reference(tmp_path, monkeypatch):
    from snapsr.eval.perceptual import _CONVS, DISTS, DISTS_FILE, VGG_FILE, VGG16Features

    with zipfile.ZipFile(WHEEL) as z:
        source = z.read("DISTS_pytorch/DISTS_pt.py").decode()
        (tmp_path / DISTS_FILE).write_bytes(z.read("DISTS_pytorch/weights.pt"))
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]  # VGG16's, as the reference assumes
    g = torch.Generator().manual_seed(0)
    sd, c_in = {}, 3
    for i, w in zip(_CONVS, widths):
        sd[f"features.{i}.weight"] = torch.randn(w, c_in, 3, 3, generator=g) * (2 / (9 * c_in)) ** 0.5
        sd[f"features.{i}.bias"] = torch.randn(w, generator=g) * 0.01
        c_in = w
    torch.save(sd, tmp_path / VGG_FILE)

    tv = types.ModuleType("torchvision")
    tv.models = types.SimpleNamespace(vgg16=lambda pretrained=True: VGG16Features.from_state_dict(sd))
    tv.transforms = types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # where the reference looks for weights.pt
    (tmp_path / "weights.pt").write_bytes((tmp_path / DISTS_FILE).read_bytes())
    ns: dict = {"__name__": "dists_reference"}
    exec(compile(source, "DISTS_pt.py", "exec"), ns)
    ref = ns["DISTS"]().eval()
    ours = DISTS.from_files(tmp_path)

    a = torch.from_numpy(smooth_image(96, 128, 0)).permute(2, 0, 1)[None].float() / 255
    b = torch.nn.functional.avg_pool2d(a, 3, 1, 1, count_include_pad=False)
    c = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    for x, y in ((a, b), (a, c), (b, c)):
        with torch.no_grad():
            assert abs(ours(x, y).item() - ref(x, y).item()) < 1e-5
