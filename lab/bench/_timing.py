"""Timing for the benchmarks: wall-clock and CPU seconds of each call of a function.

    t = time_calls(lambda i: world.render(scenes[i]), repeats=1000)
    rate = len(t.wall) / sum(t.wall)            # calls per second
    step = time_calls(lambda i: train_step(), repeats=10, warmup=2).median   # seconds

CPU seconds (`time.process_time`, all threads of this process) tell one core's speed even when
other jobs share the machine; wall seconds are what a user waits.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    """Seconds per timed call, in call order."""

    wall: list[float]  # time.perf_counter seconds
    cpu: list[float]  # time.process_time seconds (this process, all threads)

    @property
    def median(self) -> float:
        """Median wall seconds of one call."""
        return statistics.median(self.wall)

    @property
    def calls_per_second(self) -> float:
        """Calls per wall second over all timed calls."""
        return len(self.wall) / sum(self.wall)

    @property
    def calls_per_cpu_second(self) -> float:
        """Calls per CPU second over all timed calls (a floor of 1 ns guards a clock that did not tick)."""
        return len(self.cpu) / max(sum(self.cpu), 1e-9)


def time_calls(fn: Callable[[int], object], repeats: int, warmup: int = 0) -> Timings:
    """Calls `fn(i)` for i = 0, 1, ...: `warmup` untimed calls, then `repeats` timed ones.

    Args:
        fn: takes the call's index (e.g. to pick its input); its result is ignored.
        repeats: timed calls (>= 1).
        warmup: untimed calls first (caches, lazy initialisation, optimizer state).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats} and warmup={warmup}; expected repeats >= 1 and warmup >= 0")
    for i in range(warmup):
        fn(i)
    wall, cpu = [], []
    for i in range(warmup, warmup + repeats):
        w, c = time.perf_counter(), time.process_time()
        fn(i)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return Timings(wall, cpu)


def add_threads_argument(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    """`--threads N`: torch CPU threads of the benchmark (`pin_threads`). Pinned, a benchmark run beside
    another job neither oversubscribes the cores nor reads as slower than it is by surprise; the
    count is recorded in the JSON's provenance (`cpu_threads`)."""
    was = f"default {default}" if default else "default: torch's, one per core"
    parser.add_argument("--threads", type=int, default=default, help=f"torch CPU threads ({was})")


def pin_threads(threads: int | None) -> None:
    """Sets torch's CPU threads to `threads` (None or 0: leaves torch's default); rejects a negative count."""
    import torch

    if threads is not None and threads < 0:
        raise ValueError(f"--threads {threads}: expected a positive number of CPU threads (or 0 for torch's default)")
    if threads:
        torch.set_num_threads(threads)
