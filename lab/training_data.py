"""The training stream: what every training step sees, as a pure function of (seed, step, rank).

    for step, (prompts, pixels) in training_batches(seed=0, batch_size=64, start=0, stop=3000, workers=4):
        ...   # pixels: (64, 3, 64, 64) float in [-1, 1]; prompts: 64 captions

Step `s` of process `rank` always renders the same scenes (`stream_seed(seed, s, rank)`), whether it is
rendered inline or ahead of time in DataLoader worker processes, and whether the run started at step 0
or resumed at `s`: so an interrupted run resumes bit-exactly, and the number of workers changes only
the speed. Workers matter on a GPU, where one process renders ~4,400 scenes/s and the model trains
faster than that; on a 2-core CPU the model is the bottleneck and inline rendering is as fast.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import numpy as np
import torch

from lab import world

DATA_STREAM, HOLDOUT_STREAM, NOISE_STREAM = 0, 1, 2  # scenes, held-out draws, noise/timesteps/dropout
PREFETCH_PER_WORKER = 2  # batches each worker renders ahead
MAX_AUTO_WORKERS = 8  # `workers=None` on CUDA: enough to feed an H100 at batch 1024 (~4,400 scenes/s each)


def stream_seed(seed: int, step: int, rank: int = 0, stream: int = DATA_STREAM) -> int:
    """The data/noise seed of one training step on one process: a pure function, so a run resumed
    at `step` draws exactly what an uninterrupted run would have drawn."""
    return int(np.random.SeedSequence([seed, step, rank, stream]).generate_state(1, np.uint64)[0] >> 1)


class TrainingBatches(torch.utils.data.Dataset):
    """Map-style dataset over steps: item `step` is (prompts, pixels) for process `rank`, with
    pixels (batch_size, 3, 64, 64) float in [-1, 1] (the pipeline's convention)."""

    def __init__(
        self,
        seed: int,
        batch_size: int,
        rank: int = 0,
        world_config: world.WorldConfig = world.DEFAULT_WORLD,
        task_weights: tuple[float, ...] = (),
    ):
        if task_weights:
            world.task_probabilities(task_weights)  # fail here, not in a worker
        self.seed, self.batch_size, self.rank, self.world_config = seed, batch_size, rank, world_config
        self.task_weights = tuple(task_weights)

    def __getitem__(self, step: int) -> tuple[list[str], torch.Tensor]:
        from lab.vae import images_to_tensor

        prompts, images = world.training_batch(
            stream_seed(self.seed, step, self.rank), self.batch_size, self.world_config, self.task_weights
        )
        return prompts, images_to_tensor(images)


def default_workers(local_processes: int = 1) -> int:
    """Render workers per training process when none are asked for: none on a CPU-only machine (the
    model is the bottleneck there and workers would take its cores), else up to MAX_AUTO_WORKERS of
    this process's share of the spare cores."""
    if not torch.cuda.is_available():
        return 0
    return max(0, min(MAX_AUTO_WORKERS, (os.cpu_count() or 1) // max(1, local_processes) - 1))


def _ignore_sigint(_worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; the trainer handles it at a step boundary, so workers
    # must not die first and take the batch being rendered with them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def training_batches(
    seed: int,
    batch_size: int,
    start: int,
    stop: int,
    rank: int = 0,
    workers: int | None = None,
    local_processes: int = 1,
    world_config: world.WorldConfig = world.DEFAULT_WORLD,
    task_weights: tuple[float, ...] = (),
) -> Iterator[tuple[int, tuple[list[str], torch.Tensor]]]:
    """Yields (step, (prompts, pixels)) for steps start..stop-1 in order, rendered by `workers`
    DataLoader processes (0: inline; None: `default_workers(local_processes)`). Raises ValueError on
    workers < 0. `task_weights`: the task mix (see `world.sample_training_prompt`; () = uniform)."""
    workers = default_workers(local_processes) if workers is None else workers
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0 renders in the training process), got {workers}")
    dataset = TrainingBatches(seed, batch_size, rank, world_config, task_weights)
    if workers == 0:  # no DataLoader at all: nothing is rendered ahead, so a crash happens at its own step
        for step in range(start, stop):
            yield step, dataset[step]
        return
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=range(start, stop),
        num_workers=workers,
        prefetch_factor=PREFETCH_PER_WORKER,
        worker_init_fn=_ignore_sigint,
        pin_memory=torch.cuda.is_available(),
    )
    yield from zip(range(start, stop), loader)
