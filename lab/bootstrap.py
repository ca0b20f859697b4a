"""Error bars for GenEval-mini scores: a two-level bootstrap over prompts and the images of each prompt.

    lo, hi = interval(report).overall_interval          # 95% interval of the overall score
    diff = compare(report_a, report_b)                  # paired: identical prompts and seeds
    print(diff.difference, diff.interval)

Why not a binomial over images (measured by `lab.experiments.seed_variance` on S, quick set, 6
seeds per prompt; reports/geneval/seed_variance.json). GenEval's overall score is the mean of six
task accuracies, and images are not exchangeable:
(1) the initial noise carries difficulty whatever the prompt: when seed set j gives one noise to
    every prompt, the overall score's SD across seed sets is 0.073 (0.100 with the evaluator before
    hardening), 2.1x the binomial's 0.035 and 2.4x the 0.031 of independent seeds; with a distinct
    seed per image (the benchmark's layout) it is 0.025, within the binomial (0.034). Seed sets that
    share or reuse noise across prompts are therefore correlated samples, and two models must be
    compared paired, on identical prompts and seeds, where the noise's share cancels;
(2) prompts differ in difficulty: intra-prompt correlation 0.45-0.55 for single objects (4 distinct
    prompts in the full set), up to 0.2 for colours and position, ~0.05 elsewhere, so a score
    generalises over prompts only as far as the prompt sample allows.
Resampling prompts (stratified by task) and then images within each prompt carries both into the
interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lab.world import TASKS


@dataclass(frozen=True)
class BootstrapConfig:
    """Resampling settings of the intervals."""

    n_resamples: int = 2000  # bootstrap replicates
    confidence: float = 0.95  # two-sided coverage of the percentile interval
    seed: int = 0  # replicates are drawn from this seed: same report, same interval


DEFAULT_BOOTSTRAP = BootstrapConfig()


@dataclass(frozen=True)
class Interval:
    """A score with its bootstrap interval, overall and per task (all fractions in [0, 1], or
    differences in [-1, 1])."""

    overall: float
    overall_interval: tuple[float, float]
    task: dict[str, float]
    task_interval: dict[str, tuple[float, float]]
    n_images: int
    n_prompts: int

    def to_json(self) -> dict:
        return {
            "overall": self.overall,
            "overall_interval": list(self.overall_interval),
            "task": self.task,
            "task_interval": {t: list(v) for t, v in self.task_interval.items()},
            "n_images": self.n_images,
            "n_prompts": self.n_prompts,
        }


def bootstrap(
    values: np.ndarray, tasks: Sequence[str], groups: Sequence, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> Interval:
    """Mean of per-task means of `values`, with a stratified two-level bootstrap interval.

    Args:
        values: (N,) per-image values (1/0 correct, or a paired difference in {-1, 0, 1}).
        tasks: N task tags; tasks are resampled separately (GenEval fixes each task's prompt count).
        groups: N hashable prompt keys (the prompt index): images of one prompt are resampled together,
            then among themselves.
    Returns:
        The estimate and its percentile interval at `config.confidence`.
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or len(values) != len(tasks) or len(values) != len(groups):
        raise ValueError(
            f"values {values.shape}, {len(tasks)} tasks and {len(groups)} groups; expected one of each per image"
        )
    if not len(values):
        raise ValueError("no images to bootstrap")
    if not 0 < config.confidence < 1 or config.n_resamples < 1:
        raise ValueError(
            f"confidence {config.confidence} and n_resamples {config.n_resamples}; expected (0, 1) and >= 1"
        )
    rng = np.random.default_rng(config.seed)
    present = [t for t in TASKS if t in set(tasks)] + sorted(set(tasks) - set(TASKS))
    point, reps, n_prompts = {}, {}, 0
    for t in present:
        members: dict = {}
        for i, (tag, g) in enumerate(zip(tasks, groups)):
            if tag == t:
                members.setdefault(g, []).append(i)
        n_prompts += len(members)
        point[t] = float(values[[i for m in members.values() for i in m]].mean())
        reps[t] = _two_level(values, list(members.values()), config.n_resamples, rng)
    tail = (1 - config.confidence) / 2
    overall_reps = np.mean([reps[t] for t in present], axis=0)

    def bounds(x: np.ndarray) -> tuple[float, float]:
        lo, hi = np.quantile(x, [tail, 1 - tail])
        return float(lo), float(hi)

    return Interval(
        float(np.mean(list(point.values()))),
        bounds(overall_reps),
        point,
        {t: bounds(reps[t]) for t in present},
        len(values),
        n_prompts,
    )


def _two_level(values: np.ndarray, members: list[list[int]], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples,) means of `values` over prompts drawn with replacement from `members` (image
    indices per prompt), each drawn prompt contributing its size's worth of its images drawn with replacement."""
    sizes = np.array([len(m) for m in members])
    table = np.zeros((len(members), sizes.max()), np.int64)
    for j, m in enumerate(members):
        table[j, : len(m)] = m
    picked = rng.integers(len(members), size=(n_resamples, len(members)))  # (R, m) prompts
    n = sizes[picked]  # (R, m)
    pos = (rng.random((n_resamples, len(members), sizes.max())) * n[..., None]).astype(np.int64)
    valid = np.arange(sizes.max())[None, None, :] < n[..., None]
    drawn = values[table[picked[..., None], pos]] * valid
    return drawn.sum((1, 2)) / valid.sum((1, 2))
