"""Frozen dataclass configs and their thin TOML / ``key=value`` override layer.

Every option lives, with its default, in a dataclass beside the concept it configures
(``FlowConfig`` in ``model/config.py``, ``DegradeConfig`` in ``degrade/config.py``, the run
configs in ``train/``). Files and command-line overrides only replace fields; they never
add keys the dataclass does not have.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomllib

T = TypeVar("T")


# ---------------------------------------------------------------------------
# (de)serialisation


def to_dict(cfg: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (tuple,):
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(args[0], value, where)
    if tp is bool:
        if isinstance(value, str):
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{where}: not a boolean: {value!r}")
        return bool(value)
    if tp in (int, float, str):
        try:
            out = tp(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"{where}: cannot read {value!r} as {tp.__name__}") from e
        if tp is int and isinstance(value, float) and value != out:
            raise ValueError(f"{where}: {value!r} is not an integer")
        return out
    return value


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown config key(s) {sorted(unknown)} in {where or cls.__name__}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}".strip(".")) for k, v in data.items()}
    return cls(**kwargs)


def merge(cfg: T, data: dict, where: str = "") -> T:
    """Return ``cfg`` with the fields in ``data`` (nested dicts for nested configs) replaced."""
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for key, value in data.items():
        if key not in hints:
            raise ValueError(f"unknown config key {f'{where}.{key}'.strip('.')!r}")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = merge(current, value, f"{where}.{key}".strip("."))
        elif isinstance(current, dict) and isinstance(value, dict):  # a free table: keys replaced one by one
            changes[key] = {**current, **value}
        else:
            changes[key] = _coerce(hints[key], value, f"{where}.{key}".strip("."))
    return dataclasses.replace(cfg, **changes)


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict:
    """``["train.lr=1e-4", "flow.backbone=lrnet_b"]`` -> nested dict."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key.path=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def load(cls: type[T], path: str | Path | None = None, overrides=()) -> T:
    """Defaults of ``cls``, then a TOML/JSON file, then ``key=value`` overrides."""
    cfg = cls()
    if path is not None:
        path = Path(path)
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        cfg = merge(cfg, data)
    if overrides:
        cfg = merge(cfg, parse_overrides(overrides))
    return cfg
