"""Our metrics against BasicSR 1.4.2's own functions, read from its sdist (set SNAPSR_BASICSR_SDIST;
.ci/run fetches it from PyPI). Fixed images; agreement within 1e-4."""

import os
from pathlib import Path

import numpy as np
import pytest

from snapsr.eval.metrics import psnr, ssim
from snapsr.eval.niqe import imresize, niqe
from snapsr.infer.imageio import read_rgb

from .conftest import smooth_image

SDIST = os.environ.get("SNAPSR_BASICSR_SDIST", "")
pytestmark = pytest.mark.skipif(
    not SDIST or not Path(SDIST).exists(), reason="set SNAPSR_BASICSR_SDIST to BasicSR 1.4.2's sdist (.ci/run does)"
)


@pytest.fixture(scope="module")
def basicsr():
    pytest.importorskip("cv2", reason="pip install -e .[conformance]")
    from .reference.basicsr_ref import load

    return load(SDIST)


def images():
    photo = read_rgb(Path(__file__).parents[1] / "snapsr" / "assets" / "example.jpg")
    rng = np.random.default_rng(0)
    noisy = np.clip(photo.astype(int) + rng.integers(-20, 21, photo.shape), 0, 255).astype(np.uint8)
    smooth = smooth_image(150, 200, 5)
    blurred = np.clip(smooth.astype(float) * 0.9 + 12, 0, 255).astype(np.uint8)
    return [(noisy, photo), (blurred, smooth)]


@pytest.mark.parametrize("crop, y", [(0, False), (4, False), (4, True), (2, True)])
def test_psnr_ssim_match_basicsr(basicsr, crop, y):
    for sr, hr in images():
        bgr = lambda a: np.ascontiguousarray(a[..., ::-1])  # noqa: E731  (BasicSR takes BGR)
        assert abs(psnr(sr, hr, crop, y) - basicsr.calculate_psnr(bgr(sr), bgr(hr), crop, test_y_channel=y)) < 1e-4
        assert abs(ssim(sr, hr, crop, y) - basicsr.calculate_ssim(bgr(sr), bgr(hr), crop, test_y_channel=y)) < 1e-4


def test_niqe_matches_basicsr(basicsr):
    photo, _ = images()[0]
    for img, crop in [(photo, 0), (images()[0][1], 4), (smooth_image(200, 300, 1), 0)]:
        ref = basicsr.calculate_niqe(np.ascontiguousarray(img[..., ::-1]), crop, input_order="HWC", convert_to="y")
        assert abs(niqe(img, crop) - ref) < 1e-4


def test_imresize_matches_matlab_port(basicsr):
    import sys

    mf = sys.modules["basicsr.utils.matlab_functions"]
    # bit for bit: NIQE's grid search flips on the last bit of the resized image
    for shape in [(37, 50), (160, 256)]:
        x = np.random.default_rng(1).random(shape).astype(np.float32)
        assert np.array_equal(imresize(x, 0.5), mf.imresize(x, scale=0.5, antialiasing=True))
