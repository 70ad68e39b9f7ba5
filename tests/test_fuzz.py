"""A fuzz harness (hypothesis) over what reads untrusted bytes: the image loader, the weights
loader and the model-card checker. Each may return a value or raise its one documented error,
never anything else.

CI runs a fixed, bounded set of examples (``derandomize``); ``benchmarks/fuzz.sh`` runs more,
randomly: ``SNAPSR_FUZZ_EXAMPLES=5000 SNAPSR_FUZZ_RANDOM=1 pytest tests/test_fuzz.py``. A crash
it finds becomes a test in ``test_hostile.py``.
"""

import io
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("SNAPSR_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("SNAPSR_FUZZ_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
)


def _seeds() -> dict[str, bytes]:
    """Small valid files of every accepted format (and a few refused ones) for the mutations to start from."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    out = {}
    for fmt, kw in [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {}), ("TIFF", {}), ("BMP", {}), ("GIF", {}),
                    ("PPM", {})]:  # fmt: skip
        buf = io.BytesIO()
        (rgb.convert("P") if fmt == "GIF" else rgb).save(buf, format=fmt, **kw)
        out[fmt] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rng.random((5, 4)).astype(np.float32), mode="F").save(buf, format="TIFF")
    out["TIFF-F"] = buf.getvalue()
    out["EPS"] = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\n"
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw):
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "int"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i : i + draw(st.integers(1, 64))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "int" and len(data) >= i + 4:  # sizes and offsets: the fields decoders trust
            data[i : i + 4] = struct.pack(">I", draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])))
    return bytes(data)


@FUZZ
@given(mutated())
def test_image_loader_returns_a_picture_or_its_one_error(data):
    from snapsr.infer.imageio import ImageReadError, read_image

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x"
        p.write_bytes(data)
        try:
            pic = read_image(p, max_pixels=1_000_000)
        except ImageReadError as e:
            assert str(p) in str(e) and "\n" not in str(e)
            return
        assert pic.pixels.ndim == 3 and pic.pixels.dtype == np.float32 and np.isfinite(pic.pixels).all()
        assert 0 <= pic.pixels.min() and pic.pixels.max() <= 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FLOW_KEYS = ["scale", "sigma_p", "backbone", "precond", "sigma_data", "prompt", "estimator", "prompt_tokens",
             "prompt_dim", "encoder_input"]  # fmt: skip


@st.composite
def cards(draw):
    flow = {"scale": 4, "sigma_p": 0.2, "backbone": "lrnet_t"}
    for k in draw(st.lists(st.sampled_from(FLOW_KEYS), max_size=4)):
        flow[k] = draw(json_values | st.integers(-(2**70), 2**70))
    card = {"flow": flow}
    for k in draw(st.lists(st.sampled_from(["default_steps", "default_realism", "kind", "flow"]), max_size=2)):
        card[k] = draw(json_values)
    return draw(st.sampled_from([card, [card]]))  # a JSON array is a card too, for a hostile file


@FUZZ
@given(cards())
def test_card_checker_accepts_or_gives_one_value_error(card):
    from snapsr.model.flow import FlowSR
    from snapsr.model.weights import check_card

    try:
        cfg = check_card(card, "fuzz.safetensors")
    except ValueError as e:
        assert "fuzz.safetensors" in str(e) and "\n" not in str(e)
        return
    FlowSR(cfg)  # whatever passes the checks builds (and small: the bounds keep it so)


@pytest.fixture(scope="module")
def weights_bytes(tmp_path_factory):
    import torch

    from snapsr.model import weights
    from snapsr.model.config import FlowConfig
    from snapsr.model.flow import FlowSR

    torch.manual_seed(0)
    cfg = FlowConfig(backbone="lrnet_t")
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    weights.save(path, FlowSR(cfg), weights.flow_card(cfg, kind="student"))
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_weights_loader_loads_or_gives_one_value_error(weights_bytes, data):
    from snapsr.model.weights import load_flow

    blob = bytearray(weights_bytes)
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["snapsr"])
    choice = data.draw(st.sampled_from(["card", "bytes", "header"]))
    if choice == "card":  # a changed card in an otherwise valid file
        meta["flow"][data.draw(st.sampled_from(FLOW_KEYS))] = data.draw(json_values)
        header["__metadata__"]["snapsr"] = json.dumps(meta)
    elif choice == "header":  # a tensor's shape, dtype or offsets changed
        key = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
        field = data.draw(st.sampled_from(["shape", "dtype", "data_offsets"]))
        header[key][field] = data.draw(json_values)
    if choice != "bytes":
        body = json.dumps(header).encode()
        blob = bytearray(struct.pack("<Q", len(body)) + body + blob[8 + n :])
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= 1 << data.draw(st.integers(0, 7))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "w.safetensors"
        p.write_bytes(bytes(blob))
        try:
            model, card = load_flow(p)
        except ValueError as e:
            assert str(p) in str(e) and "\n" not in str(e)
            return
        assert all(bool(t.isfinite().all()) for t in model.state_dict().values() if t.is_floating_point())
