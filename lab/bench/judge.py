"""`lab bench judge`: how far the judge agrees with GenEval-mini, and how fast it is.

On fresh samples of a model (seeds no judge was trained on): the `quick` prompt set, and the
`novel` prompts (colour-shape pairs never used to train a model or the judge). Reports accuracy,
balanced accuracy and ROC AUC per task, the calibration curve, and judged images per second.
The count probe asks whether the judge counts: renders of counting prompts with one object fewer,
the asked number, and one more (`count_probe`).
Targets (issue 13): balanced accuracy >= 0.90 overall and >= 0.80 on every task; AUC >= 0.95.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lab import world
from lab.bench._timing import add_threads_argument, pin_threads
from lab.judge import OracleJudge, by_count_error, load_judge, reliability, roc_auc
from lab.sampling import SamplerConfig, benchmark_seeds, generate_cached, model_cache_dir

SEED = 3_000_000_000  # benchmark samples: apart from judge-training and scaling seeds
TARGETS = {"balanced_accuracy": 0.90, "task_balanced_accuracy": 0.80, "auc": 0.95}
SPEED_IMAGES = 256  # images judged in one timed call


def samples(model: str, prompt_set: str, per_prompt: int, limit: int, sampler: SamplerConfig, cache: str):
    """(images (P x per_prompt, 64, 64, 3) uint8, prompts) of `model` on a prompt set, cached."""
    from lab.zoo import resolve_model

    prompts = world.load_prompts(prompt_set)
    prompts = prompts[:: max(1, len(prompts) // limit)][:limit] if limit else prompts
    expanded = [p for p in prompts for _ in range(per_prompt)]
    seeds = benchmark_seeds(SEED, len(prompts), per_prompt)
    images, _ = generate_cached(
        lambda: resolve_model(model),
        [p.text for p in expanded],
        seeds,
        model_cache_dir(cache, model) / prompt_set,
        sampler,
        desc=f"{model} {prompt_set}",
    )
    return images, expanded


COUNT_PROBE_IMAGES = 600  # renders, a third at each offset


def count_probe(judge, n: int = COUNT_PROBE_IMAGES, seed: int = SEED) -> dict:
    """Does the judge count? `n` degraded renders of counting prompts (`miscounted_renders`), a third
    drawn with one object fewer than asked, a third with the asked number, a third with one more.

    Returns:
        {"offsets": [{"offset", "n", "p_yes_mean", "says_yes"}, ...], "right_over_one_more" and
        "right_over_one_fewer": how often the judge's margin ranks a right-count render above a
        miscounted one (ROC AUC between the two groups; 0.5 = it cannot tell them apart) -- what
        best-of-N needs on counting, where most failures are one object too many.}
    """
    from lab.judge_data import miscounted_renders

    images, prompts, offsets = miscounted_renders(n, seed, offsets=(-1, 0, 1))
    scores = judge.score(images, prompts)
    # the offsets are count errors by construction: the same grouping as on generated samples
    rows = [{"offset": r.pop("error"), **r} for r in by_count_error(scores, offsets)]

    def right_over(d: int) -> float:
        pair = (offsets == 0) | (offsets == d)
        return roc_auc(scores.margin[pair], offsets[pair] == 0)

    return {"offsets": rows, "right_over_one_more": right_over(1), "right_over_one_fewer": right_over(-1)}


def measure(judge_spec: str, model: str, per_prompt: int, limit: int, sampler: SamplerConfig, cache: str) -> dict:
    judge = load_judge(judge_spec)
    out = {"judge": judge.name, "model": model, "splits": {}}
    for split, per in (("quick", per_prompt), ("novel", 1)):
        images, prompts = samples(model, split, per, limit, sampler, cache)
        truth = OracleJudge().score(images, [p.text for p in prompts]).says_yes
        scores = judge.score(images, [p.text for p in prompts])
        out["splits"][split] = reliability(scores, truth, [p.task for p in prompts])
    out["count_probe"] = count_probe(judge)
    speed = np.repeat(images[:1], SPEED_IMAGES, axis=0)
    t = time.perf_counter()
    judge.score(speed, [prompts[0].text] * SPEED_IMAGES)
    out["images_per_s"] = SPEED_IMAGES / (time.perf_counter() - t)
    seen = out["splits"]["quick"]
    out["targets"] = TARGETS
    out["meets_targets"] = {
        "balanced_accuracy": seen["overall"]["balanced_accuracy"] >= TARGETS["balanced_accuracy"],
        "every_task": all(r["balanced_accuracy"] >= TARGETS["task_balanced_accuracy"] for r in seen["tasks"].values()),
        "auc": seen["overall"]["auc"] >= TARGETS["auc"],
    }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lab bench judge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge", default="checkpoints/judge", help="judge directory or 'oracle'")
    parser.add_argument("--model", default="S", help="the generator whose samples are judged (lab.zoo spec)")
    parser.add_argument("--per-prompt", type=int, default=2, help="images per quick-set prompt")
    parser.add_argument("--limit", type=int, default=0, help="prompts per set (0 = all)")
    parser.add_argument("--steps", type=int, default=SamplerConfig.steps, help="denoising steps of the samples")
    parser.add_argument("--cache", default="runs/bench_judge", help="where generated samples are kept")
    parser.add_argument("--quick", action="store_true", help="12 prompts per set, 1 image each, 4 steps")
    parser.add_argument("--out", default="reports/bench/judge.json")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    if args.quick:
        args.limit, args.per_prompt, args.steps = 12, 1, 4
    result = measure(args.judge, args.model, args.per_prompt, args.limit, SamplerConfig(steps=args.steps), args.cache)
    from lab.provenance import write_json

    path = write_json({"benchmark": "judge", **result}, args.out)
    for split, r in result["splits"].items():
        o = r["overall"]
        print(
            f"{split:>6}: balanced accuracy {o['balanced_accuracy']:.3f}, AUC {o['auc']:.3f}, accuracy {o['accuracy']:.3f} "
            f"({o['n']} images); per task: "
            + ", ".join(f"{t} {v['balanced_accuracy']:.2f}" for t, v in r["tasks"].items())
        )
    probe = result["count_probe"]
    print(
        "counting renders, P(yes) by objects drawn minus asked: "
        + ", ".join(f"{r['offset']:+d}: {r['p_yes_mean']:.2f}" for r in probe["offsets"])
        + f"; right count ranked above one more {probe['right_over_one_more']:.2f}, "
        f"above one fewer {probe['right_over_one_fewer']:.2f}"
    )
    print(f"judge: {result['images_per_s']:.0f} images/s; targets met: {result['meets_targets']} -> {path}")
    return result
