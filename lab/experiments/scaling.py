"""The inference-scaling experiment (SANA 1.5 section 4, Figs. 8-11), run by notebooks/scaling.ipynb.

    cfg = preset(ScalingConfig, "scaling", "full")
    metrics = run(cfg, "reports/scaling")
    figs = figures(metrics)

For every model (S, L and pruned depths of L) it generates `n_max` candidates per GenEval-mini
prompt once (cached, resumable), has the judge score each candidate once and the evaluator
judge each, and then reads every best-of-N off those candidates: for N dividing `n_max`, the
candidates of a prompt form `n_max / N` disjoint groups, each picks its winner by SANA's rule
(`lab.scaling.rank`), and accuracy is averaged over groups and prompts (GenEval's mean of tasks).
Three selectors share the candidates: the learned judge, the oracle (the evaluator itself: an
upper bound) and random choice (the expected single-sample accuracy).

Also measured: (b) more denoising steps vs more candidates at equal sampling compute, (c) the
compute-matched frontier over (model depth, N), (d) the judge's reliability against the evaluator
on these held-out samples and on the `novel` prompts it never saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab import geneval, world
from lab.config import config_dict
from lab.judge import JudgeScores, by_count_error, count_errors_array, load_judge, reliability
from lab.sampling import SamplerConfig, benchmark_seeds, generate_cached, model_cache_dir, nfe_per_image
from lab.scaling import rank

METRICS_FILE = "metrics.json"
SEED = 2_000_000_000  # candidate seeds start here: apart from benchmark seeds (0..) and the judge's data
TIMING_BATCH = 16  # images per timed generation when measuring seconds per image
TARGETS = {"best_of_16_L": 0.80, "gain_at_16": 0.25}  # issue 13: learned-judge best-of-16 on L; gain over N=1


@dataclass(frozen=True)
class ScalingConfig:
    """One run. Presets: configs/experiments/scaling.yaml (quick, full)."""

    models: tuple[str, ...] = ("S", "L@12", "L")  # lab.zoo.resolve_model specs
    prompts: str = "full"  # GenEval-mini prompt set
    prompt_limit: int = 0  # 0 = all; else the first this many in task round-robin order (`interleaved`)
    n_max: int = 16  # candidates per prompt and model
    ns: tuple[int, ...] = (1, 2, 4, 8, 16)  # best-of-N read off the candidates; each must divide n_max
    judge: str = "checkpoints/judge"  # lab.judge.load_judge spec
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    steps_sweep: tuple[int, ...] = (5, 10, 20, 40)  # (b): one image per prompt at each of these step counts
    novel_per_prompt: int = 4  # (d): images per novel prompt for the judge's generalisation split (0 = skip)
    seed: int = SEED
    work_dir: str = "runs/scaling"  # candidate cache, reused across runs and sessions

    def __post_init__(self):
        bad = [n for n in self.ns if n < 1 or self.n_max % n]
        if bad:
            raise ValueError(f"ns {list(bad)} do not divide n_max = {self.n_max}; expected divisors such as 1, 2, 4")


Config = ScalingConfig


def interleaved(prompts: list[world.Prompt], limit: int = 0) -> list[world.Prompt]:
    """The prompts in task round-robin order (one of each task in turn), the first `limit` of them
    (0 = all). Any prefix is balanced across tasks, and a longer run extends a shorter one, so the
    candidate cache of a 128-prompt run is reused by the full set's."""
    by_task = [[p for p in prompts if p.task == t] for t in world.TASKS]
    order = [q[i] for i in range(max(map(len, by_task))) for q in by_task if i < len(q)]
    return order[:limit] if limit else order


def model_cache(cfg: ScalingConfig, model: str) -> Path:
    """Cache folder of one model's samples (`lab.sampling.model_cache_dir`: retrained models never reuse)."""
    return model_cache_dir(cfg.work_dir, model)


def candidates(cfg: ScalingConfig, model: str, prompts: list[world.Prompt], progress: bool = True) -> np.ndarray:
    """(P, n_max, H, W, 3) uint8: candidate j of prompt p uses seed `cfg.seed + p * n_max + j`."""
    from lab.zoo import resolve_model

    texts = [p.text for p in prompts for _ in range(cfg.n_max)]
    seeds = benchmark_seeds(cfg.seed, len(prompts), cfg.n_max)
    images, _ = generate_cached(
        lambda: resolve_model(model),
        texts,
        seeds,
        model_cache(cfg, model),
        cfg.sampler,
        progress,
        desc=f"candidates {model}",
    )
    return images.reshape(len(prompts), cfg.n_max, *images.shape[1:])


def judge_all(judge, images: np.ndarray, prompts: list[world.Prompt]) -> tuple[JudgeScores, np.ndarray, list]:
    """Judge scores, evaluator verdicts (bool) and count errors (`geneval.count_error`: None outside
    counting) of (P, K, ...) candidates, flattened prompt-major (P x K,)."""
    flat = images.reshape(-1, *images.shape[2:])
    expanded = [p for p in prompts for _ in range(images.shape[1])]
    scores = judge.score(flat, [p.text for p in expanded])  # a VLMJudge batches by itself
    verdicts = geneval.evaluate(flat, expanded).verdicts
    correct = np.array([v.correct for v in verdicts])
    return scores, correct, [geneval.count_error(v, p) for v, p in zip(verdicts, expanded)]


def counting_picks(scores: JudgeScores, errors: list, n_max: int) -> dict:
    """What best-of-`n_max` does to counting. Per count error (objects detected minus asked,
    `lab.judge.by_count_error`'s rows): the judge's P(yes), the share of counting candidates with
    that error and the share of the judge's winners (one per counting prompt). Candidates
    prompt-major (P x n_max,)."""
    errs = count_errors_array(errors).reshape(-1, n_max)
    counting = np.flatnonzero(~np.isnan(errs[:, 0]))
    winners = np.array([errs[p, rank(scores.take(np.arange(p * n_max, (p + 1) * n_max)))[0][0]] for p in counting])
    rows = by_count_error(scores, errors)
    for r in rows:
        r["share_of_candidates"] = float((errs[counting] == r["error"]).mean())
        r["share_of_judge_winners"] = float((winners == r["error"]).mean())
    return {"prompts": int(len(counting)), "by_error": rows}


def overall_with_interval(values: np.ndarray, tasks: list[str]) -> dict:
    """GenEval's overall (mean of per-task means) of per-prompt results `values` (P,) or (P, G)
    (G values per prompt, e.g. one per disjoint group of candidates), with the 95% interval of
    `lab.bootstrap` (prompts resampled within tasks, then a prompt's values among themselves)."""
    from lab.bootstrap import bootstrap

    values = np.asarray(values, float).reshape(len(tasks), -1)
    g = values.shape[1]
    r = bootstrap(values.ravel(), np.repeat(tasks, g), np.repeat(np.arange(len(tasks)), g))
    return {"overall": r.overall, "interval": list(r.overall_interval), "tasks": r.task}


def selection_curves(scores: JudgeScores, correct: np.ndarray, tasks: list[str], n_max: int, ns) -> dict:
    """Accuracy of best-of-N by selector, for each N in `ns`.

    Args:
        scores, correct: per candidate, prompt-major (P x n_max,).
    Returns:
        {"judge" | "oracle" | "random": [{"n": N} | overall_with_interval(...), ...]}.
    """
    correct = correct.reshape(-1, n_max)
    out: dict[str, list] = {"judge": [], "oracle": [], "random": []}
    for n in ns:
        groups = correct.reshape(len(correct), n_max // n, n)  # (P, G, N)
        picked = np.zeros(groups.shape[:2], bool)
        for p in range(len(correct)):
            for g in range(n_max // n):
                idx = np.arange(p * n_max + g * n, p * n_max + (g + 1) * n)
                picked[p, g] = groups[p, g, rank(scores.take(idx))[0][0]]
        out["judge"].append({"n": n} | overall_with_interval(picked, tasks))
        out["oracle"].append({"n": n} | overall_with_interval(groups.any(2), tasks))
        out["random"].append({"n": n} | overall_with_interval(groups.mean(2), tasks))
    return out


def seconds_per_image(models, sampler: SamplerConfig, prompt: str = "a photo of two circles") -> dict[str, float]:
    """Generation seconds per image of each model at batch TIMING_BATCH, measured side by side
    (interleaved, best of two) so the ratios hold on a noisy machine."""
    from lab.sampling import generate
    from lab.zoo import resolve_model

    pipes = {m: resolve_model(m) for m in models}
    best = {m: float("inf") for m in models}
    for _ in range(2):
        for m, pipe in pipes.items():
            t = time.perf_counter()
            generate(pipe, [prompt] * TIMING_BATCH, range(TIMING_BATCH), sampler)
            best[m] = min(best[m], (time.perf_counter() - t) / TIMING_BATCH)
    return best


def judge_seconds_per_image(judge, images: np.ndarray, prompt: str) -> float:
    t = time.perf_counter()
    judge.score(images, [prompt] * len(images))
    return (time.perf_counter() - t) / len(images)


def run(cfg: ScalingConfig, out: str | Path | None = None, progress: bool = True) -> dict:
    """Runs the experiment; writes `out/metrics.json` when `out` is given. Returns the metrics."""
    from lab.provenance import write_json
    from lab.zoo import model_spec

    prompts = interleaved(world.load_prompts(cfg.prompts), cfg.prompt_limit)
    tasks = [p.task for p in prompts]
    judge = load_judge(cfg.judge)
    metrics = {
        "config": config_dict(cfg) | {"sampler": config_dict(cfg.sampler)},
        "judge": judge.name,
        "num_prompts": len(prompts),
        "models": {},
    }
    all_scores, all_correct, all_tasks = [], [], []
    for model in cfg.models:
        images = candidates(cfg, model, prompts, progress)
        scores, correct, errors = judge_all(judge, images, prompts)
        spec = model_spec(model)
        blocks = spec.depth or spec.source_layers  # from the config: no weights loaded
        metrics["models"][model] = {
            "blocks": blocks,
            "curves": selection_curves(scores, correct, tasks, cfg.n_max, cfg.ns),
            "reliability": reliability(scores, correct, np.repeat(tasks, cfg.n_max)),
            "counting": counting_picks(scores, errors, cfg.n_max),
        }
        all_scores.append(scores)
        all_correct.append(correct)
        all_tasks += np.repeat(tasks, cfg.n_max).tolist()
    metrics["reliability"] = {
        "held_out": reliability(JudgeScores.concat(all_scores), np.concatenate(all_correct), all_tasks)
    }
    if cfg.novel_per_prompt:
        metrics["reliability"]["novel"] = novel_reliability(cfg, judge, progress)
    metrics["steps_vs_candidates"] = steps_vs_candidates(cfg, prompts, metrics, progress)
    metrics["timing"] = timing(cfg, judge, prompts)
    metrics["frontier"] = frontier(cfg, metrics)
    metrics["targets"] = check_targets(cfg, metrics)
    if out is not None:
        write_json(metrics, Path(out) / METRICS_FILE)
    return metrics


def novel_reliability(cfg: ScalingConfig, judge, progress: bool) -> dict:
    """The judge on the first model's samples of the `novel` prompts (colour-shape pairs that no
    model and not the judge saw in training)."""
    from lab.zoo import resolve_model

    novel = interleaved(world.load_prompts("novel"), cfg.prompt_limit)
    model = cfg.models[0]
    texts = [p.text for p in novel for _ in range(cfg.novel_per_prompt)]
    seeds = benchmark_seeds(cfg.seed, len(novel), cfg.novel_per_prompt)
    images, _ = generate_cached(
        lambda: resolve_model(model),
        texts,
        seeds,
        model_cache(cfg, model) / "novel",
        cfg.sampler,
        progress,
        desc=f"novel {model}",
    )
    images = images.reshape(len(novel), cfg.novel_per_prompt, *images.shape[1:])
    scores, correct, _ = judge_all(judge, images, novel)
    return reliability(scores, correct, np.repeat([p.task for p in novel], cfg.novel_per_prompt)) | {"model": model}


def steps_vs_candidates(cfg: ScalingConfig, prompts: list[world.Prompt], metrics: dict, progress: bool) -> dict:
    """(b) On the first model: accuracy of one image at each step count of `steps_sweep` (candidate
    0's seed), against best-of-N at the sampler's steps picked by the judge and by the oracle, all by
    sampling compute per final image (transformer evaluations, NFE)."""
    from dataclasses import replace

    from lab.zoo import resolve_model

    model = cfg.models[0]
    texts = [p.text for p in prompts]
    seeds = [cfg.seed + i * cfg.n_max for i in range(len(prompts))]
    steps_rows = []
    for steps in cfg.steps_sweep:
        sampler = replace(cfg.sampler, steps=steps)
        images, _ = generate_cached(
            lambda: resolve_model(model),
            texts,
            seeds,
            model_cache(cfg, model) / f"steps{steps}",
            sampler,
            progress,
            desc=f"{model} at {steps} steps",
        )
        correct = np.array([v.correct for v in geneval.evaluate(images, prompts).verdicts], float)
        steps_rows.append(
            {"steps": steps, "nfe": nfe_per_image(sampler)} | overall_with_interval(correct, [p.task for p in prompts])
        )
    curves = metrics["models"][model]["curves"]
    by_selector = {
        sel: [r | {"nfe": r["n"] * nfe_per_image(cfg.sampler)} for r in curves[sel]] for sel in ("judge", "oracle")
    }
    return {
        "model": model,
        "steps": steps_rows,
        "candidates": by_selector["judge"],
        "candidates_oracle": by_selector["oracle"],
    }


def timing(cfg: ScalingConfig, judge, prompts: list[world.Prompt]) -> dict:
    """Seconds per generated image of each model (side by side) and per judged image."""
    per_model = seconds_per_image(cfg.models, cfg.sampler)
    sample = np.stack([world.render_prompt(p, i) for i, p in enumerate(prompts[:TIMING_BATCH])])
    return {
        "generate_seconds_per_image": per_model,
        "judge_seconds_per_image": judge_seconds_per_image(judge, sample, prompts[0].text),
    }


def frontier(cfg: ScalingConfig, metrics: dict) -> list[dict]:
    """(c) Every (model, N) with its cost per final image — seconds (N x (generate + judge)) and
    block evaluations (N x NFE x blocks) — and its accuracy; `pareto` marks the points no other
    beats on both cost (seconds) and accuracy."""
    t = metrics["timing"]
    rows = []
    for model, m in metrics["models"].items():
        for r in m["curves"]["judge"]:
            n = r["n"]
            seconds = n * (t["generate_seconds_per_image"][model] + t["judge_seconds_per_image"])
            rows.append(
                {
                    "model": model,
                    "n": n,
                    "blocks": m["blocks"],
                    "seconds": seconds,
                    "block_evaluations": n * nfe_per_image(cfg.sampler) * m["blocks"],
                    "overall": r["overall"],
                }
            )
    for r in rows:  # dominated: another point is no slower and no worse, and better in one of the two
        r["pareto"] = not any(
            o["seconds"] <= r["seconds"]
            and o["overall"] >= r["overall"]
            and (o["seconds"], o["overall"]) != (r["seconds"], r["overall"])
            for o in rows
            if o is not r
        )
    return rows


def check_targets(cfg: ScalingConfig, metrics: dict) -> dict:
    """Issue 13's targets where the run measured them (L's best-of-16; monotone in N; the gain at 16)."""
    out = {}
    for model, m in metrics["models"].items():
        judge = {r["n"]: r["overall"] for r in m["curves"]["judge"]}
        values = [judge[n] for n in sorted(judge)]
        row = {"monotone_in_n": bool(all(b >= a for a, b in zip(values, values[1:])))}
        if 16 in judge and 1 in judge:
            row["best_of_16"] = judge[16]
            row["gain_at_16"] = judge[16] - judge[1]
            row["gain_target_met"] = row["gain_at_16"] >= TARGETS["gain_at_16"]
            if model == "L":
                row["best_of_16_target_met"] = row["best_of_16"] >= TARGETS["best_of_16_L"]
        out[model] = row
    return out


def figures(metrics: dict, stamp: dict | None = None) -> dict:
    """The experiment's figures by name (lab.plots draws them all)."""
    from lab import plots

    stamp = stamp if stamp is not None else metrics.get("provenance")
    return {
        "geneval_vs_n": plots.scaling_curves(metrics["models"], stamp=stamp),
        "steps_vs_candidates": plots.steps_vs_candidates(metrics["steps_vs_candidates"], stamp=stamp),
        "frontier": plots.compute_frontier(metrics["frontier"], stamp=stamp),
        "judge_reliability": plots.judge_reliability(metrics["reliability"], stamp=stamp),
    }


def summary_table(metrics: dict) -> str:
    """Markdown: GenEval-mini overall (95% interval) per model and N, by selector."""
    rows = [
        "| model | selector | "
        + " | ".join(f"N={r['n']}" for r in next(iter(metrics["models"].values()))["curves"]["judge"])
        + " |"
    ]
    rows.append("| --- | --- |" + " ---: |" * (rows[0].count("N=")))
    for model, m in metrics["models"].items():
        for selector, rs in m["curves"].items():
            cells = [f"{r['overall']:.3f} [{r['interval'][0]:.2f}, {r['interval'][1]:.2f}]" for r in rs]
            rows.append(f"| {model} ({m['blocks']} blocks) | {selector} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _says_yes_rate(r: dict) -> float:
    """How often the judge said yes, from its agreement row: true positives plus false positives."""
    pos, neg = r["positives"], r["n"] - r["positives"]
    yes = (r["true_positive_rate"] * pos if pos else 0.0) + ((1 - r["true_negative_rate"]) * neg if neg else 0.0)
    return yes / max(r["n"], 1)


def reliability_table(metrics: dict) -> str:
    """Markdown: the judge's agreement with the evaluator per task, for each split."""
    rows = [
        "| split | task | pairs | correct (evaluator) | judge says yes | accuracy | balanced accuracy | AUC |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for split, rel in metrics["reliability"].items():
        for task, r in (rel["tasks"] | {"overall": rel["overall"]}).items():
            rows.append(
                f"| {split} | {task} | {r['n']} | {r['positives'] / max(r['n'], 1):.2f} | "
                f"{_says_yes_rate(r):.2f} | {r['accuracy']:.3f} | "
                f"{r['balanced_accuracy']:.3f} | {r['auc']:.3f} |"
            )
    return "\n".join(rows)


def counting_table(metrics: dict) -> str:
    """Markdown: per model and count error (objects detected minus asked), the share of counting
    candidates and of the judge's best-of-`n_max` winners with that error, and the judge's mean
    P(yes) on them (`counting_picks`). Empty when the run predates the breakdown."""
    rows = [
        f"| model | count error | candidates | judge's best-of-{metrics['config']['n_max']} winners | mean P(yes) "
        "| judge says yes |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, m in metrics["models"].items():
        for r in m.get("counting", {}).get("by_error", []):
            rows.append(
                f"| {model} | {r['error']:+d} | {r['share_of_candidates']:.2f} | {r['share_of_judge_winners']:.2f} | "
                f"{r['p_yes_mean']:.2f} | {r['says_yes']:.2f} |"
            )
    return "\n".join(rows) if len(rows) > 2 else ""
