"""Why one GenEval-mini score varies more across seed sets than a binomial predicts.

Two layouts of the same prompts x K seeds, judged by the evaluator:
- `distinct`: every image its own seed (the benchmark's layout, `sampling.benchmark_seeds`);
- `shared`: seed j is used by every prompt (seed set j = one noise for all prompts).

For each, the spread of the overall score across the K seed sets is compared with (a) the binomial
of a mean of task accuracies, (b) the same spread with each prompt's outcomes shuffled across seeds
(what independent seeds would give), and prompt difficulty is measured as the intra-prompt
correlation (ICC) per task. A shared-layout spread above (b) means the noise itself carries
difficulty whatever the prompt.

    stats = seed_variance(load_pipeline("checkpoints/S"), "quick", seeds_per_prompt=6)
"""

from __future__ import annotations

import numpy as np

from lab import geneval, world

DISTINCT_BASE, SHARED_BASE = 100_000, 200_000  # seeds of the two layouts (apart from the benchmark's 0..)
SHUFFLES = 200  # permutations for the independent-seeds reference


def layout_seeds(n_prompts: int, k: int) -> dict[str, list[int]]:
    """Seeds per image (prompt-major, n_prompts x k) of the `distinct` and `shared` layouts."""
    return {
        "distinct": [DISTINCT_BASE + i * k + j for i in range(n_prompts) for j in range(k)],
        "shared": [SHARED_BASE + j for _ in range(n_prompts) for j in range(k)],
    }


def spread_stats(hits: np.ndarray, tasks: list[str], seed: int = 0) -> dict:
    """Spread of the overall score across seed sets. `hits` (P, K) 1/0 per prompt and seed set;
    `tasks` the P task tags. Returns SDs (fractions) and per-task ICC."""
    present = [t for t in world.TASKS if t in tasks]
    rows = {t: np.array([i for i, x in enumerate(tasks) if x == t]) for t in present}

    def overall(col: np.ndarray) -> float:
        return float(np.mean([col[rows[t]].mean() for t in present]))

    p_k, k = hits.mean(), hits.shape[1]
    binomial = np.sqrt(sum(hits[rows[t]].mean() * (1 - hits[rows[t]].mean()) / len(rows[t]) for t in present)) / len(
        present
    )
    rng = np.random.default_rng(seed)
    shuffled = [
        np.std([overall(c) for c in np.array([rng.permutation(h) for h in hits]).T], ddof=1) for _ in range(SHUFFLES)
    ]
    icc = {}
    for t in present:
        h = hits[rows[t]]
        between, within = k * h.mean(1).var(ddof=1), h.var(1, ddof=1).mean()
        icc[t] = (
            float((between - within) / (between + (k - 1) * within)) if between + (k - 1) * within > 0 else float("nan")
        )
    return {
        "mean": float(p_k),
        "sd_across_seed_sets": float(np.std([overall(hits[:, j]) for j in range(k)], ddof=1)),
        "sd_binomial": float(binomial),
        "sd_independent_seeds": float(np.mean(shuffled)),
        "icc": icc,
    }


def seed_variance(pipe, prompts: str = "quick", seeds_per_prompt: int = 6) -> dict:
    """Generates both layouts with `pipe` and returns {layout: spread_stats} (about 2 x P x K images)."""
    from lab.sampling import generate

    prompt_set = world.load_prompts(prompts)
    k = seeds_per_prompt
    texts = [p.text for p in prompt_set for _ in range(k)]
    expanded = [p for p in prompt_set for _ in range(k)]
    out = {}
    for name, seeds in layout_seeds(len(prompt_set), k).items():
        report = geneval.evaluate(generate(pipe, texts, seeds), expanded)
        hits = np.array([v.correct for v in report.verdicts], float).reshape(len(prompt_set), k)
        out[name] = spread_stats(hits, [p.task for p in prompt_set])
    return out
