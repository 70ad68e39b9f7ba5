"""CLIP-IQA (Wang et al., AAAI 2023) on OpenAI's CLIP ResNet-50, as pyiqa computes ``clipiqa``,
the variant one-step SR papers report.

The score is the mean, over five antonym prompt pairs ("Good image" / "bad image", ...), of the
softmax probability of the positive prompt, from the cosine similarity of CLIP's image and text
embeddings. The image is scored at its own size: the attention pool's positional embedding is left
out, as in CLIP-IQA, so any size works. Higher is better, in [0, 1].

Files, in the folder given by ``--metric-weights``:

* ``RN50.pt``: OpenAI's CLIP RN50 checkpoint (a TorchScript archive, or its plain state dict);
* ``bpe_simple_vocab_16e6.txt.gz``: CLIP's BPE merges (in the ``openai-clip`` package).

Our own modules, laid out with OpenAI's parameter names so the published state dict loads;
widths and depths are read from it, so tests use tiny random weights of the same layout.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from snapsr.eval.iqa.clip_tokenizer import VOCAB_FILE, ClipTokenizer
from snapsr.eval.iqa.files import load_state_dict, need

WEIGHTS_FILE = "RN50.pt"
# pyiqa's prompt pairs for clipiqa (positive first); the paper's single pair was "Good/Bad photo."
PROMPT_PAIRS = (
    ("Good image", "bad image"),
    ("Sharp image", "blurry image"),
    ("sharp edges", "blurry edges"),
    ("High resolution image", "low resolution image"),
    ("Noise-free image", "noisy image"),
)
MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's input normalisation
STD = (0.26862954, 0.26130258, 0.27577711)


class Bottleneck(nn.Module):
    """CLIP's anti-aliased bottleneck: stride by average pooling after the 3x3 conv."""

    def __init__(self, c_in: int, planes: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride > 1 or c_in != planes * 4:
            # named as in OpenAI's checkpoint: "-1" the pool, "0" the conv, "1" the norm
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("-1", nn.AvgPool2d(stride) if stride > 1 else nn.Identity()),
                        ("0", nn.Conv2d(c_in, planes * 4, 1, bias=False)),
                        ("1", nn.BatchNorm2d(planes * 4)),
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.avgpool(F.relu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class AttentionPool(nn.Module):
    """QKV attention of the mean token over all tokens; no positional embedding (CLIP-IQA)."""

    def __init__(self, n_pos: int, dim: int, heads: int, out_dim: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(n_pos, dim))  # loaded, unused here
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.c_proj = nn.Linear(dim, out_dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1)
        b, n, c = tokens.shape
        split = lambda t: t.view(b, -1, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        q = split(self.q_proj(tokens[:, :1]))  # only the pooled token's output is used
        k, v = split(self.k_proj(tokens)), split(self.v_proj(tokens))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c)
        return self.c_proj(out)


class ModifiedResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...], width: int, n_pos: int, out_dim: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, width // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(width // 2)
        self.conv2, self.bn2 = nn.Conv2d(width // 2, width // 2, 3, 1, 1, bias=False), nn.BatchNorm2d(width // 2)
        self.conv3, self.bn3 = nn.Conv2d(width // 2, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width)
        c = width
        stages = []
        for i, n in enumerate(layers):
            planes = width * 2**i
            blocks = [Bottleneck(c, planes, 1 if i == 0 else 2)] + [
                Bottleneck(planes * 4, planes, 1) for _ in range(n - 1)
            ]
            stages.append(nn.Sequential(*blocks))
            c = planes * 4
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.attnpool = AttentionPool(n_pos, c, width * 32 // 64, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = F.relu(bn(conv(x)))
        x = F.avg_pool2d(x, 2)
        return self.attnpool(self.layer4(self.layer3(self.layer2(self.layer1(x)))))


class TextBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


@dataclass(frozen=True)
class ClipConfig:
    layers: tuple[int, ...] = (3, 4, 6, 3)  # RN50
    width: int = 64
    n_pos: int = 50  # the attention pool's positional table (7x7 + 1); loaded, unused by CLIP-IQA
    embed_dim: int = 1024
    vocab: int = 49408
    context: int = 77
    text_width: int = 512
    text_layers: int = 12

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> ClipConfig:
        layers = tuple(len({k.split(".")[2] for k in sd if k.startswith(f"visual.layer{i}.")}) for i in (1, 2, 3, 4))
        if "visual.proj" in sd or not all(layers):
            raise ValueError("not a CLIP ResNet state dict (CLIP-IQA uses RN50)")
        return cls(
            layers=layers,
            width=sd["visual.layer1.0.conv1.weight"].shape[0],
            n_pos=sd["visual.attnpool.positional_embedding"].shape[0],
            embed_dim=sd["text_projection"].shape[1],
            vocab=sd["token_embedding.weight"].shape[0],
            context=sd["positional_embedding"].shape[0],
            text_width=sd["ln_final.weight"].shape[0],
            text_layers=len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")}),
        )


class ClipRN(nn.Module):
    """CLIP with a ResNet image tower; ``encode_image`` / ``encode_text`` give unnormalised embeddings."""

    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.cfg = cfg
        self.visual = ModifiedResNet(cfg.layers, cfg.width, cfg.n_pos, cfg.embed_dim)
        w = cfg.text_width
        self.token_embedding = nn.Embedding(cfg.vocab, w)
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.context, w))
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(TextBlock(w, w // 64) for _ in range(cfg.text_layers))
        self.ln_final = nn.LayerNorm(w)
        self.text_projection = nn.Parameter(torch.zeros(w, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.eval().requires_grad_(False)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> ClipRN:
        net = cls(ClipConfig.from_state_dict(sd))
        # OpenAI's files carry three config integers beside the tensors
        # (and, read from TorchScript, tensor attributes such as the text blocks' attention mask)
        own = net.state_dict()
        missing = [k for k in own if k not in sd]
        if missing:
            raise ValueError(f"not a CLIP RN50 state dict: {len(missing)} tensors missing (first: {missing[0]})")
        net.load_state_dict({k: sd[k].float() for k in own})
        return net

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:n]
        mask = torch.full((n, n), float("-inf"), device=ids.device).triu_(1)  # causal
        for block in self.transformer.resblocks:
            x = block(x, mask)
        x = self.ln_final(x)
        return x[torch.arange(len(ids)), ids.argmax(-1)] @ self.text_projection  # at the end token


def load_clip_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """OpenAI's release is a TorchScript archive; a plain state dict is read with ``weights_only``.

    The archive is never handed to ``torch.jit.load`` (its code, ``__setstate__`` methods included,
    would run): its ``data.pkl`` is read by ``_TensorsOnly``, which knows tensors, storages and plain
    containers and refuses every other global, and only the tensors are kept.
    """
    with zipfile.ZipFile(path) if zipfile.is_zipfile(path) else contextlib.nullcontext() as z:
        scripted = z is not None and any(n.endswith("constants.pkl") for n in z.namelist())
    if not scripted:
        return load_state_dict(path, "CLIPIQA")
    try:
        with zipfile.ZipFile(path) as z:
            data = next(n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1)
            root = _TensorsOnly(io.BytesIO(z.read(data)), z, data.split("/")[0]).load()
    except Exception as e:  # noqa: BLE001 - damaged, or a global that is not a tensor's
        raise ValueError(f"CLIPIQA: {path} is not a readable TorchScript CLIP checkpoint ({e})") from None
    return _tensors(root)


class _Obj:
    """A TorchScript object (a module): its attributes, nothing of its code."""

    def __init__(self, *args):
        self.attrs: dict = {}

    def __setstate__(self, state):
        self.attrs = state if isinstance(state, dict) else {}


class _Storage:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


_STORAGES = {
    f"{n}Storage": d
    for n, d in [
        ("Float", torch.float32), ("Half", torch.float16), ("BFloat16", torch.bfloat16), ("Double", torch.float64),
        ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8),
        ("Byte", torch.uint8), ("Bool", torch.bool),
    ]
}  # fmt: skip


class _TensorsOnly(pickle.Unpickler):
    """Unpickles TorchScript's ``data.pkl``: module objects become ``_Obj``, tensors are rebuilt
    from the archive's storages; any other global is refused."""

    def __init__(self, f, archive: zipfile.ZipFile, prefix: str):
        super().__init__(f)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return type(name, (_Obj,), {})
        if module == "torch" and name in _STORAGES:
            return _Storage(_STORAGES[name])
        allowed = {
            ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
            ("collections", "OrderedDict"): OrderedDict,
            ("torch.jit._pickle", "build_intlist"): list,
            ("torch.jit._pickle", "build_doublelist"): list,
            ("torch.jit._pickle", "build_boollist"): list,
            ("torch.jit._pickle", "build_tensorlist"): list,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing {module}.{name}")
        return allowed[(module, name)]

    def persistent_load(self, pid):
        kind, storage, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        raw = bytearray(self.archive.read(f"{self.prefix}/data/{key}"))
        untyped = torch.frombuffer(raw, dtype=torch.uint8).untyped_storage() if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=storage.dtype, _internal=True)


def _tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for k, v in (obj.attrs if isinstance(obj, _Obj) else {}).items():
        if isinstance(v, torch.Tensor):
            out[prefix + k] = v.clone()
        elif isinstance(v, _Obj):
            out.update(_tensors(v, f"{prefix}{k}."))
    return out


class CLIPIQA(nn.Module):
    def __init__(self, clip: ClipRN, tokenizer: ClipTokenizer):
        super().__init__()
        self.clip = clip
        ids = tokenizer([p for pair in PROMPT_PAIRS for p in pair], clip.positional_embedding.shape[0])
        with torch.no_grad():
            text = clip.encode_text(ids)
        self.register_buffer("text", F.normalize(text, dim=-1), persistent=False)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_files(cls, folder: Path) -> CLIPIQA:
        sd = load_clip_state_dict(need(folder, WEIGHTS_FILE, "OpenAI's CLIP RN50 checkpoint", "CLIPIQA"))
        tok = ClipTokenizer.from_file(
            need(folder, VOCAB_FILE, "CLIP's BPE merges, from the openai-clip package", "CLIPIQA")
        )
        return cls(ClipRN.from_state_dict(sd), tok)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score per image of ``(B,3,H,W)`` in [0, 1]."""
        img = F.normalize(self.clip.encode_image((x - self.mean) / self.std), dim=-1)
        logits = self.clip.logit_scale.exp() * img @ self.text.T
        return logits.view(len(x), -1, 2).softmax(-1)[..., 0].mean(1)
