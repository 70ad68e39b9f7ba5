"""The one-step student as a portable ONNX graph, and the onnxruntime model ``Upscaler`` runs it as.

The graph is the whole one-step upscale of one tile, ``x_0 + v(x_0, t)`` with ``x_0`` built from
``lr`` and ``eps``:

==========  ======================  ==========================================================
input       shape                   meaning
==========  ======================  ==========================================================
``lr``      (1, 3, h, w) float32    the low-resolution tile, RGB in [0, 1]; any h and w
``eps``     (1, 3, s*h, s*w)        standard normal noise, one value per output pixel
``t``       (1, 1, 1, 1) or         the realism dial in [0, 1]: one value, or one per output
            (1, 1, s*h, s*w)        pixel (the per-pixel dial)
``sr``      (1, 3, s*h, s*w)        output, unclamped: clamp to [0, 1]
==========  ======================  ==========================================================

``s`` is the scale (metadata ``scale``). The file's metadata also holds the snapsr model card
(``snapsr``, JSON). ``Upscaler`` feeds ``eps`` from the same position-seeded noise as PyTorch
(``tiling.position_noise``), so the two backends give the same image; callers in other
languages can pass any standard normal noise (``eps = 0`` is allowed and gives the mean).
The RCOD estimator (``--realism auto``) is not in the graph: a model whose card's default is
``auto`` is written with a fixed default instead (``fixed_default``).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from snapsr import atomic
from snapsr.errors import first_line
from snapsr.model.card import ModelCard, from_metadata
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR, upsample

OPSET = 17


class OneStepGraph(nn.Module):
    """``(lr, eps, t) -> x_0 + v(x_0, t)``: what is exported."""

    def __init__(self, model: FlowSR):
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m = self.model
        cond = m.condition(lr)
        x_0 = m.start(cond, eps)
        return m.one_step(x_0, t.expand(-1, -1, x_0.shape[-2], x_0.shape[-1]), cond)


def fixed_default(card: ModelCard) -> ModelCard:
    """The card with ``default_realism = "auto"`` (which needs the estimator, not in the graph)
    replaced by the middle of the range the estimator chooses in (``rcod.auto_range``, 0.5 without
    one): what a caller of the ONNX file gets without naming a dial value."""
    if card.default_realism != "auto":
        return card
    lo, hi = (card.record.get("rcod") or {}).get("auto_range", (0.0, 1.0))
    record = {**card.record, "default_realism_note": "auto (the estimator) in the PyTorch file; fixed here"}
    return dataclasses.replace(card, default_realism=round((lo + hi) / 2, 4), record=record)


def export(model: FlowSR, card: ModelCard, path: str | Path) -> Path:
    """Write ``model`` (a one-step student) as ONNX with dynamic sizes and its card in the metadata."""
    import io

    try:
        import onnx
    except ImportError as e:
        raise RuntimeError("ONNX export needs the onnx package: pip install 'snapsr[onnx]'") from e
    if not card.student:
        raise ValueError("only one-step students export to ONNX (the teacher's sampler is a loop)")
    s = model.cfg.scale
    graph = OneStepGraph(model.eval().float()).requires_grad_(False)
    lr, t = torch.rand(1, 3, 16, 24), torch.full((1, 1, 1, 1), 0.5)
    eps = torch.randn(1, 3, 16 * s, 24 * s)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the tracer notes the shape checks it freezes; none depends on the size
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (lr, eps, t),
            buf,
            input_names=["lr", "eps", "t"],
            output_names=["sr"],
            dynamic_axes={
                "lr": {2: "h", 3: "w"},
                "eps": {2: "H", 3: "W"},
                "t": {2: "tH", 3: "tW"},
                "sr": {2: "H", 3: "W"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    notes = {
        "snapsr": json.dumps(fixed_default(card).to_dict()),
        "scale": str(s),
        "inputs": "lr (1,3,h,w) RGB in [0,1]; eps (1,3,s*h,s*w) standard normal; t (1,1,1,1) or (1,1,s*h,s*w) in [0,1]",
        "output": "sr (1,3,s*h,s*w), clamp to [0,1]",
        "size_multiple": "1 (any h, w)",
    }
    for k, v in notes.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    return atomic.write(Path(path), lambda f: f.write(proto.SerializeToString()))


class OnnxFlow:
    """What ``Upscaler`` needs of a model, run by onnxruntime on the CPU: ``cfg``, ``condition`` and
    ``upscale_tile(lr, eps, t)``."""

    backbone = None

    def __init__(self, path: str | Path, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RuntimeError("the onnxruntime backend needs onnxruntime: pip install 'snapsr[onnx]'") from e
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime's own error types
            raise ValueError(f"{path}: not a readable ONNX model ({first_line(e)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.card = ModelCard.parse(from_metadata(meta, path, "ONNX model (see snapsr export --onnx)"), path)
        # the estimator (realism "auto") is not in the graph
        self.cfg: FlowConfig = dataclasses.replace(self.card.flow, estimator=False)

    def condition(self, lr: torch.Tensor) -> torch.Tensor:
        return upsample(lr, self.cfg.scale)

    def upscale_tile(self, lr: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32)
        t = t.view(1, 1, 1, 1) if t.ndim == 0 else t.view(1, 1, *t.shape[-2:])
        feed = {"lr": _np(lr), "eps": _np(eps), "t": _np(t)}
        return torch.from_numpy(self.session.run(["sr"], feed)[0])

    # the nn.Module calls Upscaler makes on a model
    def eval(self):
        return self

    def requires_grad_(self, _=False):
        return self

    def to(self, *_, **__):
        return self


def _np(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().numpy())
