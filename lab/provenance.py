"""What produced a result: commit, versions, machine. Stamped on every benchmark JSON and figure."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # the lab's checkout: relative config/checkpoint paths start here


def repo_path(path: str | os.PathLike) -> Path:
    """`path` as given when absolute or present from here, else relative to the repository root
    (how configs, records and notebooks name checkpoints: `checkpoints/L`)."""
    path = Path(path)
    return path if path.is_absolute() or path.exists() else REPO_ROOT / path


SMOKE_TEST = "smoke test — not a result"  # how every quick-mode output is marked


def smoke_test_note(mode: str) -> str:
    """The line quick-mode outputs print before any number or claim ("" in full mode)."""
    if mode != "quick":
        return ""
    return (
        f'QUICK MODE: {SMOKE_TEST} (a tiny or barely trained model, a few prompts and steps; mode="full" makes results)'
    )


def git_commit(short: bool = True) -> str:
    """The commit of the lab's checkout (with `+dirty` if it has uncommitted changes outside
    reports/), or `unknown`."""
    root = REPO_ROOT
    try:
        args = ["git", "-C", str(root), "rev-parse"] + (["--short"] if short else []) + ["HEAD"]
        sha = subprocess.run(args, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        # results being rewritten under reports/ do not make the code that writes them dirty
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".", ":!reports"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict:
    """A small dict describing the software and machine: attach it to every result written."""
    import torch

    return {
        "commit": git_commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"cpu ({platform.processor() or platform.machine()})",
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def portable(obj):
    """`obj` with every path inside the checkout written relative to it (Paths become strings), so
    committed results and records never carry one machine's directories."""
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [portable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        obj = os.fspath(obj)
    if isinstance(obj, str) and obj.startswith(f"{REPO_ROOT}{os.sep}"):
        return obj[len(str(REPO_ROOT)) + 1 :]
    return obj


def write_json(result: dict, path: str | os.PathLike) -> Path:
    """Writes `result` with a `provenance` entry, atomically (temp file + rename); paths inside
    the checkout are written relative to it (`portable`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(portable({**result, "provenance": provenance()}), indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path
