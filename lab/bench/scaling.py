"""`lab bench scaling`: what a best-of-N costs.

1. Judge calls per best-of-N: each candidate is judged once and cached, so exactly N (the
   reference script re-judges survivors every round: about 2N).
2. Per-candidate time of one best-of-16 (batched generation, one judge call per batch, the
   tournament) against 16 single generations each judged alone, measured side by side.
3. Judge images per second.
"""

from __future__ import annotations

import argparse
import statistics
import time

from lab.bench._timing import add_threads_argument, pin_threads
from lab.judge import load_judge
from lab.sampling import SamplerConfig, candidate_seeds, generate
from lab.scaling import best_of_n

PROMPT = "a photo of three circles"  # a training-distribution prompt: no out-of-domain warning


class CountingJudge:
    """Wraps a judge and counts the images it is asked to score."""

    def __init__(self, judge):
        self.judge, self.name, self.images = judge, judge.name, 0

    def score(self, images, prompts):
        self.images += len(images)
        return self.judge.score(images, prompts)


def measure(pipe, judge, n: int, sampler: SamplerConfig, repeats: int) -> dict:
    calls = {}
    for k in (1, 4, n):
        counting = CountingJudge(judge)
        best_of_n(pipe, PROMPT, k, counting, sampler=sampler)
        calls[k] = counting.images
    batched, single = [], []
    for _ in range(repeats):  # interleaved, so drift on a noisy machine hits both alike
        t = time.perf_counter()
        best_of_n(pipe, PROMPT, n, judge, sampler=sampler)
        batched.append(time.perf_counter() - t)
        t = time.perf_counter()
        for s in candidate_seeds(0, n):
            judge.score(generate(pipe, [PROMPT], [s], sampler), [PROMPT])
        single.append(time.perf_counter() - t)
    images = generate(pipe, [PROMPT] * n, candidate_seeds(0, n), sampler)
    t = time.perf_counter()
    judge.score(images, [PROMPT] * n)
    judge_s = time.perf_counter() - t
    b, s = statistics.median(batched) / n, statistics.median(single) / n
    return {
        "n": n,
        "steps": sampler.steps,
        "judge": judge.name,
        "judge_calls": {str(k): v for k, v in calls.items()},
        "judge_calls_equal_n": all(k == v for k, v in calls.items()),
        "per_candidate_s_best_of_n": b,
        "per_candidate_s_single": s,
        "ratio": b / s,
        "judge_images_per_s": n / judge_s,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lab bench scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="S", help="lab.zoo spec of the generator")
    parser.add_argument("--judge", default="checkpoints/judge", help="judge directory or 'oracle'")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--steps", type=int, default=SamplerConfig.steps)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="N = 4, 2 steps, 1 repeat")
    parser.add_argument("--out", default="reports/bench/scaling.json")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    if args.quick:
        args.n, args.steps, args.repeats = 4, 2, 1
    from lab.zoo import resolve_model

    result = measure(
        resolve_model(args.model), load_judge(args.judge), args.n, SamplerConfig(steps=args.steps), args.repeats
    )
    from lab.provenance import write_json

    path = write_json({"benchmark": "scaling", "model": args.model, **result}, args.out)
    print(
        f"judge calls per best-of-N: {result['judge_calls']} (= N: {result['judge_calls_equal_n']}); per candidate: "
        f"best-of-{args.n} {result['per_candidate_s_best_of_n']:.3f} s vs single {result['per_candidate_s_single']:.3f} s "
        f"(ratio {result['ratio']:.2f}); judge {result['judge_images_per_s']:.0f} images/s -> {path}"
    )
    return result
