"""The ONNX export and the onnxruntime backend: the same image as PyTorch, through the same tiling,
noise and I/O."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from snapsr.cli import main
from tests.conftest import perturbed, smooth_image

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(
    params=[
        {},
        {"backbone_args": {"context": 2}},
        {"prompt": True, "encoder_input": "energy"},
        {"backbone_args": {"energy": True}},
        {"one_step_precond": True},
    ],
    ids=["plain", "context", "prompt", "energy-cues", "one-step-precond"],
)
def student(tmp_path, request):
    """A tiny student; "context": with lrnet's low-resolution context branch (its pooling and resize
    in the graph, a size multiple of 16); "prompt": with RCOD's degradation prompt (its encoder and
    pooling over the whole tile in the graph); "energy-cues": lrnet's per-region degradation cues;
    "one-step-precond": a one-step student's preconditioning (``FlowConfig.one_step_precond``)."""
    from snapsr.model import weights
    from snapsr.model.config import FlowConfig

    cfg = FlowConfig(scale=4, backbone="lrnet_t", estimator=True, **request.param)
    model = perturbed(cfg, 2)
    path = tmp_path / "student.safetensors"
    weights.save(path, model, weights.flow_card(cfg, kind="student", default_realism=0.3))
    return path


def test_onnx_output_equals_pytorch_tiled_with_scalar_and_per_pixel_dial(tmp_path, student):
    from snapsr.infer.upscaler import Upscaler

    res = CliRunner().invoke(main, ["export", str(student), "--onnx", str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output
    torch_up = Upscaler.from_pretrained(str(student), dtype="fp32", tile=16, tile_overlap=6)
    onnx_up = Upscaler.from_pretrained(str(tmp_path / "m.onnx"), tile=16, tile_overlap=6)
    assert onnx_up.default_realism == 0.3 and onnx_up.scale == 4
    lr = torch.from_numpy(smooth_image(37, 45, 0)).permute(2, 0, 1)[None].float() / 255
    rmap = torch.linspace(0, 1, 45).repeat(37, 1)
    for kw in ({"realism": 0.0}, {"realism": 0.8}, {"realism_map": rmap}, {}):
        a, b = torch_up.upscale_tensor(lr, seed=5, **kw), onnx_up.upscale_tensor(lr, seed=5, **kw)
        assert a.shape == b.shape == (1, 3, 148, 180)
        assert (a - b).abs().max() < 1e-4, kw  # stated tolerance: 1e-4 in [0, 1] (float32 op order)
    with pytest.raises(ValueError, match="estimator"):  # the estimator is not in the graph
        onnx_up.upscale_tensor(lr, realism="auto")


def test_upscale_cli_runs_the_onnx_file(tmp_path, student):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(smooth_image(20, 28, 1)).save(d / "a.png")
    onnx_path = tmp_path / "m.onnx"
    assert CliRunner().invoke(main, ["export", str(student), "--onnx", str(onnx_path)]).exit_code == 0
    for backend, weights, out in (
        ("auto", onnx_path, "o1"),
        ("onnxruntime", onnx_path, "o2"),
        ("torch", student, "o3"),
    ):
        args = ["upscale", str(d), "-o", str(tmp_path / out), "--weights", str(weights), "--backend", backend, "-q"]
        res = CliRunner().invoke(main, [*args, "--dtype", "fp32", "--realism", "0.5"])
        assert res.exit_code == 0, res.output
    imgs = [np.asarray(Image.open(tmp_path / o / "a_x4.png")).astype(int) for o in ("o1", "o2", "o3")]
    assert imgs[0].shape == (80, 112, 3) and np.array_equal(imgs[0], imgs[1])
    assert np.abs(imgs[0] - imgs[2]).max() <= 1
    res = CliRunner().invoke(main, ["upscale", str(d), "--weights", str(student), "--backend", "onnxruntime"])
    assert res.exit_code == 2 and "runs a .onnx file" in res.output


def test_auto_default_is_the_estimator_in_torch_and_a_fixed_value_in_onnx(tmp_path, student):
    from snapsr.infer.upscaler import Upscaler

    shipped, onnx_path = tmp_path / "auto.safetensors", tmp_path / "auto.onnx"
    res = CliRunner().invoke(main, ["export", str(student), "-o", str(shipped), "--default-realism", "auto"])
    assert res.exit_code == 0, res.output
    up = Upscaler.from_pretrained(str(shipped), dtype="fp32")
    lr = torch.from_numpy(smooth_image(20, 28, 2)).permute(2, 0, 1)[None].float() / 255
    assert up.default_realism == "auto" and up.realism().auto
    assert torch.equal(up.upscale_tensor(lr), up.upscale_tensor(lr, realism="auto"))
    assert CliRunner().invoke(main, ["export", str(shipped), "--onnx", str(onnx_path)]).exit_code == 0
    onnx_up = Upscaler.from_pretrained(str(onnx_path))
    # the graph has no estimator: its default is the middle of the range auto chooses in (0.5 here)
    assert onnx_up.default_realism == 0.5 and onnx_up.upscale_tensor(lr).shape == (1, 3, 80, 112)
    res = CliRunner().invoke(
        main, ["export", str(shipped), "-o", str(tmp_path / "x.safetensors"), "--default-realism", "1.5"]
    )
    assert res.exit_code == 2 and "realism must be in [0, 1] or 'auto'" in res.output


def test_export_sets_the_estimators_smoothing(tmp_path, student, tiny_weights):
    from snapsr.model.weights import load_flow

    smooth = tmp_path / "smooth.safetensors"
    res = CliRunner().invoke(main, ["export", str(student), "-o", str(smooth), "--estimator-smooth", "3"])
    assert res.exit_code == 0, res.output
    model, card = load_flow(smooth)
    assert model.cfg.estimator_smooth == 3 and card.flow.estimator_smooth == 3
    assert load_flow(student)[0].cfg.estimator_smooth == 0  # the source is untouched
    lr = torch.from_numpy(smooth_image(32, 32, 2)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        a, b = (m.realism_map(m.condition(lr)) for m in (load_flow(student)[0], model))
    assert a.shape == b.shape and not torch.equal(a, b)
    for source, k, message in ((tiny_weights, "2", "no realism estimator"), (student, "65", "0<=x<=64")):
        cmd = ["export", str(source), "-o", str(tmp_path / "x.safetensors"), "--estimator-smooth", k]
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 2 and message in res.output, res.output


def test_export_writes_when_to_pick_the_model(tmp_path, student):
    from snapsr.model.weights import read_card

    out = tmp_path / "tier.safetensors"
    res = CliRunner().invoke(main, ["export", str(student), "-o", str(out), "--use", " the fast tier \t"])
    assert res.exit_code == 0, res.output
    assert read_card(out)["use"] == "the fast tier" and "use" not in read_card(student)
    for bad in ("", "two\nlines"):
        res = CliRunner().invoke(main, ["export", str(student), "-o", str(tmp_path / "x.safetensors"), "--use", bad])
        assert res.exit_code == 2 and "one line of text" in res.output, res.output


def test_onnx_errors_are_one_line(tmp_path, tiny_weights):
    from snapsr.infer.onnx import OnnxFlow

    res = CliRunner().invoke(main, ["export", str(tiny_weights), "--onnx", str(tmp_path / "t.onnx")])
    assert res.exit_code == 1 and "only one-step students" in res.output  # the teacher's sampler is a loop
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.onnx: not a readable ONNX model"):
        OnnxFlow(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxFlow(tmp_path / "missing.onnx")
