"""The seed-variance study's statistics on synthetic outcomes with and without shared noise."""

import numpy as np

from lab import world
from lab.experiments.seed_variance import layout_seeds, spread_stats

TASKS = [t for t in world.TASKS for _ in range(10)]  # 60 prompts, 10 per task


def test_noise_shared_by_all_prompts_spreads_the_score_beyond_independent_seeds():
    rng = np.random.default_rng(0)
    seed_effect = np.tile([0.35, -0.35], 6)  # seed set j easy or hard for every prompt
    hits = (rng.random((len(TASKS), 12)) < 0.5 + seed_effect[None, :]).astype(float)
    s = spread_stats(hits, TASKS)
    assert s["sd_across_seed_sets"] > 2 * s["sd_independent_seeds"]


def test_independent_outcomes_spread_like_a_binomial_and_show_no_prompt_correlation():
    rng = np.random.default_rng(1)
    hits = (rng.random((len(TASKS), 12)) < 0.5).astype(float)
    s = spread_stats(hits, TASKS)
    assert 0.5 < s["sd_across_seed_sets"] / s["sd_binomial"] < 1.6
    assert all(abs(v) < 0.25 for v in s["icc"].values())


def test_layouts_give_distinct_seeds_or_one_seed_per_set():
    seeds = layout_seeds(3, 2)
    assert len(set(seeds["distinct"])) == 6 and seeds["shared"] == [seeds["shared"][0], seeds["shared"][1]] * 3
