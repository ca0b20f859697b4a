"""Experiment logic behind the notebooks: each module runs one of the paper's experiments from a
config and returns (and writes) a metrics dict; the notebook only tells the story and draws.

    work = work_directory(mode, work_dir, "runs/pruning", "pruning-runs-")

A quick (smoke-test) run writes its models into a temporary directory that is removed when the
process (the notebook's kernel) exits; a full run, or any run given a `work_dir`, keeps its work
there so an interrupted run can be resumed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

_TEMPORARY: list[tempfile.TemporaryDirectory] = []  # held until exit, then removed by their finalizers


def temporary_directory(prefix: str) -> Path:
    """A new directory under the system's temporary one, removed when this process exits."""
    tmp = tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True)
    _TEMPORARY.append(tmp)
    return Path(tmp.name)


def work_directory(mode: str, work_dir: str | Path = "", full_default: str = "", prefix: str = "lab-") -> Path:
    """Where an experiment writes its models: `work_dir` when given, else `full_default` in full
    mode (both relative to the repository root), else a `temporary_directory` for a quick run."""
    from lab.provenance import REPO_ROOT

    if work_dir:
        return REPO_ROOT / work_dir
    if mode == "full" and full_default:
        return REPO_ROOT / full_default
    return temporary_directory(prefix)
