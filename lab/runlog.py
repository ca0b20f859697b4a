"""The JSONL training log: one line per step with loss, lr, images/s and peak memory."""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from pathlib import Path

import torch


def peak_memory_mb(device: torch.device | str = "cpu") -> float:
    """Peak memory of this process in MiB: CUDA allocator peak on GPU, max resident set on CPU."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


class RunLog:
    """Appends JSON lines to `path`; measures images/s between calls of `step`."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.device = device
        self._last = time.perf_counter()

    def truncate_after(self, step: int) -> None:
        """Drops lines past `step`: a resumed run rewrites the steps it lost, so the log matches the weights."""
        if not self.path.exists():
            return
        kept = [ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
        self.path.write_text("".join(ln + "\n" for ln in kept))

    @contextlib.contextmanager
    def paused(self):
        """Time spent inside the block (e.g. evaluating mid-run) is not counted in the next step's images/s."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._last += time.perf_counter() - start

    def step(self, step: int, images: int, **values) -> dict:
        now = time.perf_counter()
        record = {
            "step": step,
            **values,
            "images_per_s": images / max(now - self._last, 1e-9),
            "peak_mem_mb": peak_memory_mb(self.device),
        }
        self._last = now
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        return record


def read_log(path: str | Path) -> list[dict]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def training_seconds(path: str | Path, batch_size: int) -> float:
    """Wall-clock seconds the steps in the log took (batch / images-per-second summed), whether
    they ran in one go or across resumes."""
    return sum(batch_size / r["images_per_s"] for r in read_log(path))
