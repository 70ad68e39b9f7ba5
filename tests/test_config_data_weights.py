import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from snapsr.config import from_dict, load, merge, parse_overrides, to_dict
from snapsr.data import HRCrops
from snapsr.model import weights
from snapsr.model.card import ModelCard
from snapsr.model.config import FlowConfig
from snapsr.model.flow import FlowSR
from snapsr.train.config import TeacherRunConfig


def test_config_round_trip_and_overrides(tmp_path):
    cfg = TeacherRunConfig()
    assert from_dict(TeacherRunConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    f = tmp_path / "c.toml"
    f.write_text('[flow]\nbackbone = "lrnet_b"\n[data]\nmultiscale = [1.0, 0.5]\n[train]\nsteps = 7\n')
    c = load(TeacherRunConfig, f, ["train.lr=1e-3", "degrade.jpeg=false", "train.val_steps=1,2"])
    assert c.flow.backbone == "lrnet_b" and c.data.multiscale == (1.0, 0.5) and c.train.steps == 7
    assert c.train.lr == 1e-3 and c.degrade.jpeg is False and c.train.val_steps == (1, 2)
    assert cfg.train.steps != 7  # frozen defaults untouched
    with pytest.raises(ValueError, match="unknown config key"):
        merge(cfg, parse_overrides(["train.nope=1"]))
    with pytest.raises(ValueError, match="cannot read"):
        merge(cfg, parse_overrides(["train.steps=many"]))
    with pytest.raises(ValueError, match="boolean"):
        merge(cfg, parse_overrides(["degrade.jpeg=maybe"]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.steps = 3  # frozen
    # a free table (the backbone's own arguments): an override replaces its key, keeps the others
    f.write_text('[flow.backbone_args]\nprior = "a"\nlora_rank = 4\n')
    c = load(TeacherRunConfig, f, ["flow.backbone_args.prior=/data/sd-turbo"])
    assert c.flow.backbone_args == {"prior": "/data/sd-turbo", "lora_rank": 4}


def test_cli_dry_run_prints_resolved_config():
    out = subprocess.run(
        [sys.executable, "-m", "snapsr", "train", "teacher", "--dry-run", "train.steps=5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["train"]["steps"] == 5
    bad = subprocess.run(
        [sys.executable, "-m", "snapsr", "train", "teacher", "--dry-run", "train.x=5"], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "unknown config key" in bad.stderr


def test_dataset_skips_unreadable_by_name(photo_dir, capsys):
    (photo_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = HRCrops(photo_dir, crop=32, batch_size=5, multiscale=(1.0, 0.5), seed=3)
    err = capsys.readouterr().err
    assert "broken.png" in err and "notes.txt" in err
    assert len(ds.files) == 3 and {p.name for p, _ in ds.skipped} == {"broken.png", "notes.txt"}
    a, b, c = ds[7], ds[7], ds[8]
    assert a.shape == (5, 3, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    lazy = HRCrops(photo_dir, crop=32, batch_size=5, multiscale=(1.0, 0.5), seed=3, cache=False)
    assert torch.equal(lazy[7], a)  # same batches with or without the cache


def test_dataset_small_images_and_empty(tmp_path, photo_dir):
    ds = HRCrops(photo_dir, crop=120, batch_size=2)  # crop larger than every image
    assert ds[0].shape == (2, 3, 120, 120)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readable images"):
        HRCrops(tmp_path / "empty", crop=32, batch_size=2)


def test_weights_round_trip(tmp_path):
    cfg = FlowConfig(scale=2, sigma_p=0.3, backbone="lrnet_t")
    model = FlowSR(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    path = weights.save(tmp_path / "m.safetensors", model, weights.flow_card(cfg, kind="teacher"))
    loaded, card = weights.load_flow(path)
    assert loaded.cfg == cfg and card.kind == "teacher" and card.flow == cfg
    assert ModelCard.parse(json.loads(path.with_suffix(".json").read_text())) == card
    x = torch.rand(1, 3, 5, 6)
    eps = torch.randn(1, 3, 10, 12)
    assert torch.allclose(model.sample(x, eps=eps), loaded.sample(x, eps=eps))
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ValueError, match="not a snapsr weights file"):
        weights.load_flow(plain)
    with pytest.raises(FileNotFoundError):
        weights.load_flow(tmp_path / "missing.safetensors")


def test_model_card_is_typed_and_round_trips():
    raw = {"flow": {"scale": 2}, "kind": "student", "name": "x", "default_realism": 0.25, "recipe": "GTASR", "n": [1]}
    card = ModelCard.parse(raw)
    assert card.flow == FlowConfig(scale=2) and card.student and card.default_steps == 1
    assert card.scale == 2 and card.channels == 3 and "bf16" in card.dtypes and card.tiles_exactly
    assert not ModelCard.parse({**raw, "flow": {"backbone": "sd_tiny"}}).tiles_exactly
    assert card.record == {"recipe": "GTASR", "n": [1]}
    assert ModelCard.parse(card.to_dict()) == card and card.to_dict()["recipe"] == "GTASR"
    bads = (({"kind": "critic"}, "kind"), ({"name": 3}, "name"), ({"default_realism": 2}, "default_realism"))
    for bad, match in bads:
        with pytest.raises(ValueError, match=match):
            ModelCard.parse({**raw, **bad}, "w.safetensors")
    # "auto" (the estimator's dial) is a default only for a model that has an estimator
    auto = ModelCard.parse({**raw, "flow": {"scale": 2, "estimator": True}, "default_realism": "auto"})
    assert auto.default_realism == "auto" and ModelCard.parse(auto.to_dict()) == auto
    for bad in (
        {**raw, "default_realism": "auto"},
        {**raw, "default_realism": "AUTO"},
        {**raw, "default_realism": None},
    ):
        with pytest.raises(ValueError, match="default_realism"):
            ModelCard.parse(bad, "w.safetensors")
