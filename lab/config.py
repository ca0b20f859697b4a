"""Configs are small dataclasses; YAML files under `configs/` set their fields.

cfg = load_config(TrainConfig, "configs/S.yaml", steps=100)   # file, then overrides
save_config(cfg, run_dir / "train_config.yaml")
with_defaults(TrainConfig, yaml.safe_load(text))               # an older record, lacking newer fields
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml


def load_config(cls, path: str | Path | None = None, **overrides):
    """Builds dataclass `cls` from a YAML file (optional) and keyword overrides (None values ignored).

    Raises ValueError naming unknown keys and listing the accepted ones.
    """
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a mapping of field: value, got {type(values).__name__}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; accepted: {sorted(fields)}")
    for k, v in values.items():  # YAML gives lists where the dataclass wants tuples
        if isinstance(v, list):
            values[k] = tuple(v)
    return cls(**values)


def save_config(cfg, path: str | Path) -> None:
    """Writes `cfg` as YAML; paths inside the checkout relative to it (they may be shipped)."""
    from lab.provenance import portable

    Path(path).write_text(yaml.safe_dump(portable(config_dict(cfg)), sort_keys=False))


def config_dict(cfg) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def with_defaults(cls, recorded):
    """A recorded config mapping (e.g. a run's `train_config.yaml`) with every field of dataclass
    `cls` it lacks set to that field's default, as `config_dict` writes it.

    A record written before a field was added then reads as the run it was (the field did not
    exist, so the run used what is now its default). Keys `cls` does not know stay as they are,
    so a record holding one still differs from any config of `cls`. Anything but a mapping is
    returned unchanged.
    """
    if not isinstance(recorded, dict):
        return recorded
    missing = {}
    for f in dataclasses.fields(cls):
        if f.name in recorded:
            continue
        if f.default is not dataclasses.MISSING:
            missing[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            missing[f.name] = f.default_factory()
    return recorded | {k: list(v) if isinstance(v, tuple) else v for k, v in missing.items()}
