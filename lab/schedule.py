"""The learning-rate schedule every lab trainer uses: linear warm-up, then cosine decay."""

from __future__ import annotations

import numpy as np


def lr_at(step: int, cfg) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio` (used by every lab trainer): `cfg` holds
    `lr`, `warmup_steps`, `steps` and `min_lr_ratio`."""
    return warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)


def warmup_cosine(step: int, lr: float, warmup_steps: int, steps: int, min_lr_ratio: float) -> float:
    """The learning rate at `step` (0-based) of `steps`: `lr` x (step + 1) / warmup_steps during the
    warm-up, then a cosine from `lr` down to `lr` x `min_lr_ratio` at the last step."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(steps - warmup_steps, 1)
    return float(lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))))
