"""Experiment logic behind the notebooks: each module runs one of the paper's experiments from a
config and returns (and writes) a metrics dict; the notebook only tells the story and draws.

    work = work_directory(mode, work_dir, "runs/pruning", "pruning-runs-")

A quick (smoke-test) run writes its models into a temporary directory that is removed at the end
of the notebook (`remove_temporary_directories`), when the process exits, or — if the process was
killed — by the next quick run; a full run, or any run given a `work_dir`, keeps its work there so
an interrupted run can be resumed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

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
