"""The learning-rate schedule every lab trainer uses: linear warm-up, then cosine decay."""

from __future__ import annotations

import numpy as np


def lr_at(step: int, cfg) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio` (used by every lab trainer)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0))))
