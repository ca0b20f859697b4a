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

import numpy as np
import torch


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


DATA_STREAM, HOLDOUT_STREAM = 0, 1  # training data vs. held-out draws (calibration, validation)


def stream_seed(seed: int, step: int, rank: int = 0, stream: int = DATA_STREAM) -> int:
    """The data/noise seed of one training step on one process: a pure function, so a run resumed
    at `step` draws exactly what an uninterrupted run would have drawn."""
    return int(np.random.SeedSequence([seed, step, rank, stream]).generate_state(1, np.uint64)[0] >> 1)


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
