"""Atomic writes of directories and training state: nothing written is ever half-written.

    with atomic_directory("runs/S/checkpoint") as tmp:   # write into tmp ...
        model.save_pretrained(tmp / "transformer")
    # ... and only now does runs/S/checkpoint hold the new files (the old ones are gone).

A crash inside the block leaves the previous directory untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import torch

RUN_RECORD = "run.json"  # what a command wrote into its output directory: its arguments (see claim_output_dir)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike):
    """Yields a fresh temporary directory beside `path`; on success it replaces `path` by renames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def claim_output_dir(path: str | os.PathLike, recorded: dict | None, wanted: dict, overwrite: bool = False) -> bool:
    """Whether the output directory `path` already holds this run, refusing one that holds another.

    Args:
        recorded: the identity of the run found in `path` (read by the caller from its record), or None.
        wanted: the identity of the run about to write there.
        overwrite: allow replacing a directory of another run (the caller then writes through
            `atomic_directory`, so the old files stay until the new run succeeds).
    Returns:
        True when `path` holds this run (resume or redo it), False when it is absent, empty, or
        another run's to be overwritten. Raises FileExistsError naming what differs otherwise.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"output {path} is a file; expected a directory or a path that does not exist")
    if not path.exists() or not any(path.iterdir()):
        return False
    if recorded == wanted:
        return True
    if overwrite:
        return False
    if recorded is None:
        found = "files of no lab run of this kind"
    else:
        found = (
            "another run (differs in "
            + ", ".join(
                f"{k}: {recorded.get(k)!r} there, {wanted.get(k)!r} now"
                for k in sorted(wanted.keys() | recorded.keys())
                if recorded.get(k) != wanted.get(k)
            )
            + ")"
        )
    raise FileExistsError(
        f"output {path} is not empty: it holds {found}; choose another output or pass --overwrite "
        "(overwrite=True) to replace it"
    )


def save_state(directory: Path, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Writes the optimizer state and a JSON state dict (step, config, ...) into `directory`."""
    torch.save(optimizer.state_dict(), directory / "optimizer.pt")
    (directory / "state.json").write_text(json.dumps(state, indent=2, default=str) + "\n")


def load_state(directory: Path) -> tuple[dict, dict]:
    """Returns (optimizer state dict, state dict) written by `save_state`."""
    if not (directory / "state.json").is_file():
        raise ValueError(f"{directory} is not a training checkpoint: no state.json")
    opt = torch.load(directory / "optimizer.pt", map_location="cpu", weights_only=False)
    return opt, json.loads((directory / "state.json").read_text())


class GracefulInterrupt:
    """Turns Ctrl-C (SIGINT) into a flag checked between training steps, so the run saves a
    checkpoint at a step boundary (exact resume) instead of dying mid-update. A second Ctrl-C
    interrupts at once.

        with GracefulInterrupt() as interrupt:
            for step in ...:
                ...
                if interrupt.requested: save(); break
    """

    def __init__(self):
        self.requested = False

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        import signal
        import threading

        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
