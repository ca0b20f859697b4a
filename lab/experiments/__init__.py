"""The experiment layer: one module per paper experiment, each in the same shape, run by its notebook
(`notebooks/<name>.ipynb`, listed in `lab.reproduce.REGISTRY`):

    from lab.experiments import preset, growth
    cfg = preset(growth.Config, "growth", "quick")   # configs/experiments/growth.yaml, section quick
    metrics = growth.run(cfg, "reports/growth")      # trains, evaluates, writes its metrics JSON
    figs = growth.figures(metrics)                   # {name: figure}, drawn by lab.plots

A module's `Config` nests the library's configs (`lab.train.TrainConfig`, `lab.sampling.SamplerConfig`)
rather than copying their fields; its presets `quick` (a smoke test of the machinery, not a result)
and `full` (the committed run) are mappings of its fields in `configs/experiments/<name>.yaml`, a
nested dataclass as a nested mapping of the fields that differ from its default.

Set-up shared by the experiments lives here: where an experiment writes its models
(`work_directory`: a given folder, kept so an interrupted run resumes, or a temporary one removed
when the process exits — or, if it was killed, by the next quick run), and the model it starts
from (`source_pipeline`: a trained one, or in a quick run an untrained tiny stand-in).
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
PRESETS_DIR = "configs/experiments"  # <name>.yaml: an experiment's presets, {quick: {...}, full: {...}}


def _field_default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _build(cls, values: dict, where: str, base=None):
    """`cls` with the fields of `values` set (a list as a tuple); a mapping given for a dataclass
    field updates that field's default (so a preset names only what differs from it). Without
    `base`, the other fields take their defaults; with it, `base`'s values."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown {cls.__name__} fields {unknown}; accepted: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    out = {}
    for k, v in values.items():
        if dataclasses.is_dataclass(hints[k]) and isinstance(v, dict):
            start = getattr(base, k) if base is not None else _field_default(fields[k])
            v = _build(hints[k], v, f"{where}.{k}", start)
        out[k] = tuple(v) if isinstance(v, list) else v
    return dataclasses.replace(base, **out) if base is not None else cls(**out)


def _merged(values: dict, overrides: dict) -> dict:
    """`values` updated by `overrides`, mappings merged key by key; None in `overrides` means "not given"."""
    out = dict(values)
    for k, v in overrides.items():
        if v is None:
            continue
        out[k] = _merged(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def preset_path(name: str) -> Path:
    """`configs/experiments/<name>.yaml`, or `name` itself when it is a .yaml path (both looked up
    as `lab.provenance.repo_path` does)."""
    return repo_path(name if name.endswith(".yaml") else f"{PRESETS_DIR}/{name}.yaml")


def preset(cls, name: str, mode: str, **overrides):
    """Config `cls` from the `mode` section of `preset_path(name)`, then `overrides` (None values
    ignored; a mapping for a nested config sets only the fields it names, e.g.
    `train={"steps": 2}`). Raises ValueError on an unknown mode or field."""
    import yaml

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    path = preset_path(name)
    if not path.is_file():
        raise ValueError(
            f"no presets at {path}; expected an experiment name with {PRESETS_DIR}/<name>.yaml or a .yaml path"
        )
    sections = yaml.safe_load(path.read_text()) or {}
    if mode not in sections:
        raise ValueError(f"{path} has no {mode!r} section; it has {sorted(sections)}")
    return _build(cls, _merged(sections[mode] or {}, overrides), f"{path}:{mode}")


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
        pid = old.name[len(prefix) :].split("-", 1)[0]
        if old.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-", ignore_cleanup_errors=True)
    _TEMPORARY.append(tmp)
    return Path(tmp.name)


def remove_temporary_directories() -> None:
    """Removes every `temporary_directory` of this process now (a notebook's last cell)."""
    while _TEMPORARY:
        _TEMPORARY.pop().cleanup()


def work_directory(work_dir: str | Path = "", prefix: str = "lab-") -> Path:
    """Where an experiment writes its models: `work_dir` (relative to the repository root) when
    given, kept so that an interrupted run resumes there; "" = a new `temporary_directory` (quick
    runs), removed when the process exits."""
    from lab.provenance import REPO_ROOT

    return REPO_ROOT / work_dir if work_dir else temporary_directory(prefix)


def source_pipeline(model: str | Path, stand_in: bool, work: str | Path, how: str = "") -> Path:
    """The SanaPipeline directory an experiment starts from: `model` (the working directory first,
    then the repository); when that is no pipeline and `stand_in` is on (quick presets), an untrained
    tiny stand-in (`lab.zoo.stand_in_dir`) written under `work`, so a smoke test runs anywhere.
    Raises FileNotFoundError otherwise, saying how to make the model (`how`)."""
    from lab.zoo import stand_in_dir

    path = repo_path(model)
    if (path / "model_index.json").is_file():
        return path
    if stand_in:
        return stand_in_dir(work)
    raise FileNotFoundError(
        f"no trained pipeline at {model} (no model_index.json); this run needs one"
        + (f": {how}" if how else "")
        + " (or stand_in: true, a smoke test on an untrained tiny model)"
    )


def source_label(model: str | Path, source: str | Path) -> str:
    """How figures and tables name the model an experiment ran on: `model` itself, or the stand-in
    used in its place."""
    return str(model) if repo_path(model) == Path(source) else f"untrained tiny stand-in (no {model})"
