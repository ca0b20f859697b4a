"""Experiment logic behind the notebooks: each module runs one of the paper's experiments from a
config and returns (and writes) a metrics dict; the notebook only tells the story and draws.

    work = work_directory(mode, work_dir, "runs/pruning", "pruning-runs-")

A quick (smoke-test) run writes its models into a temporary directory that is removed at the end
of the notebook (`remove_temporary_directories`), when the process exits, or — if the process was
killed — by the next quick run; a full run, or any run given a `work_dir`, keeps its work there so
an interrupted run can be resumed.

Newer experiments (`scaling`) take their presets from `configs/experiments/<name>.yaml`, a mapping
`{quick: {...}, full: {...}}` of config fields (nested dataclasses as nested mappings):

    cfg = preset(ScalingConfig, "scaling", "quick", n_max=8)
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import typing
from pathlib import Path

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


_TEMPORARY: list[tempfile.TemporaryDirectory] = []  # held until exit, then removed by their finalizers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def temporary_directory(prefix: str) -> Path:
    """A new directory `<tmp>/<prefix><pid>-*`, removed when this process exits; first removes
    those of earlier processes (same prefix) that no longer run, e.g. killed notebook kernels."""
    for old in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = old.name[len(prefix):].split("-", 1)[0]
        if old.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-", ignore_cleanup_errors=True)
    _TEMPORARY.append(tmp)
    return Path(tmp.name)


def remove_temporary_directories() -> None:
    """Removes every `temporary_directory` of this process now (a notebook's last cell)."""
    while _TEMPORARY:
        _TEMPORARY.pop().cleanup()


def work_directory(mode: str, work_dir: str | Path = "", full_default: str = "", prefix: str = "lab-") -> Path:
    """Where an experiment writes its models: `work_dir` when given, else `full_default` in full
    mode (both relative to the repository root), else a `temporary_directory` for a quick run."""
    from lab.provenance import REPO_ROOT

    if work_dir:
        return REPO_ROOT / work_dir
    if mode == "full" and full_default:
        return REPO_ROOT / full_default
    return temporary_directory(prefix)
