"""Experiment logic behind the notebooks: each module runs one of the paper's experiments from a
config and returns (and writes) a metrics dict; the notebook only tells the story and draws.

Newer experiments (`scaling`) take their presets from `configs/experiments/<name>.yaml`, a mapping
`{quick: {...}, full: {...}}` of config fields (nested dataclasses as nested mappings):

    cfg = preset(ScalingConfig, "scaling", "quick", n_max=8)
"""

from __future__ import annotations

import dataclasses
import typing

from lab.provenance import repo_path

MODES = ("quick", "full")  # quick: a smoke test of the machinery, not a result; full: the committed run
PRESETS_DIR = "configs/experiments"


def _build(cls, values: dict, where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown {cls.__name__} fields {unknown}; accepted: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    out = {}
    for k, v in values.items():
        if dataclasses.is_dataclass(hints[k]) and isinstance(v, dict):
            v = _build(hints[k], v, f"{where}.{k}")
        out[k] = tuple(v) if isinstance(v, list) else v
    return cls(**out)


def preset(cls, name: str, mode: str, **overrides):
    """Config `cls` from the `mode` section of `configs/experiments/<name>.yaml`, then `overrides`
    (None values ignored). Raises ValueError on an unknown mode or field."""
    import yaml

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    path = repo_path(f"{PRESETS_DIR}/{name}.yaml")
    sections = yaml.safe_load(path.read_text()) or {}
    if mode not in sections:
        raise ValueError(f"{path} has no {mode!r} section; it has {sorted(sections)}")
    values = dict(sections[mode]) | {k: v for k, v in overrides.items() if v is not None}
    return _build(cls, values, f"{path}:{mode}")
