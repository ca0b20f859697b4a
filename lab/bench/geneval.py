"""`lab bench geneval`: the evaluator's three accuracy targets and its speed, measured.

- clean: renders judged against their true prompts must be 100% correct (prompts from the stored
  sets, novel included, and from the training sampler);
- perturbed: the same renders against prompts made false (wrong colour, wrong class, count +-1,
  swapped/negated relation) must be rejected >= 99.5% of the time;
- blur + noise: Gaussian blur (sigma 1 px) then Gaussian noise (sigma 0.05 on [0, 1]) must keep
  >= 98% correct on true prompts;
- speed: images/s of `evaluate_image` on one core (goal >= 200).

The helpers (`clean_cases`, `perturbations`, `degrade`) are also used by tests/test_geneval.py.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from lab import geneval, world
from lab.world import COLORS, NUMBERS, RELATIONS, SHAPES, Prompt, Scene

TARGETS = {"clean_accuracy": 1.0, "perturbed_rejection": 0.995, "blur_noise_accuracy": 0.98, "images_per_s": 200.0}
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def clean_cases(n: int, seed: int = 0) -> list[tuple[Prompt, int]]:
    """`n` (prompt, scene seed) pairs: the first half cycles through the stored GenEval-mini and
    novel sets in a seeded shuffled order, the second half comes from the training sampler."""
    stored = world.load_prompts("full") + world.load_prompts("novel")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(stored))
    prompts = [stored[order[i % len(stored)]] for i in range(n // 2)]
    prompts += [world.sample_training_prompt(rng) for _ in range(n - len(prompts))]
    seeds = rng.integers(0, 2**31 - 1, size=n)
    return list(zip(prompts, seeds.tolist()))


def perturbations(prompt: Prompt, scene: Scene, rng: np.random.Generator) -> list[tuple[str, Prompt]]:
    """Prompts that `scene` (drawn for `prompt`) does not satisfy, each tagged with its kind:
    `color`, `class`, `count`, `relation`; all in the world's templates. Every one is false for the
    scene's ground truth (`geneval.oracle_detections`): tests check it, the benchmark counts it."""
    present = {o.shape for o in scene.objects}
    absent = [s for s in SHAPES if s not in present]
    colour_of = {o.shape: o.color for o in scene.objects}  # for the single-object tasks
    t, inc = prompt.task, prompt.include
    out: list[tuple[str, Prompt]] = []

    def other_color(*avoid: str) -> str:
        choices = [c for c in COLORS if c not in avoid]
        return choices[rng.integers(len(choices))]

    def pick(xs):
        return xs[rng.integers(len(xs))]

    if t in ("single_object", "colors"):
        cls, col = inc[0].cls, inc[0].color or colour_of[inc[0].cls]
        out.append(("color", world.make_prompt("colors", (cls,), (other_color(col),))))
        out.append(("class", world.make_prompt(t, (pick(absent),), (inc[0].color,))))
        out.append(("count", world.make_prompt("counting", (cls,), count=2)))
    elif t in ("two_object", "color_attr"):
        (a, ca), (b, cb) = (inc[0].cls, inc[0].color), (inc[1].cls, inc[1].color)
        ca, cb = ca or colour_of[a], cb or colour_of[b]
        out.append(("color", world.make_prompt("color_attr", (a, b), (other_color(ca, cb), cb))))
        out.append(("color", world.make_prompt("color_attr", (a, b), (ca, other_color(ca, cb)))))
        if t == "color_attr":
            out.append(("color", world.make_prompt("color_attr", (a, b), (cb, ca))))  # colours swapped
        out.append(("class", world.make_prompt(t, (a, pick(absent)), (inc[0].color, inc[1].color))))
        out.append(("class", world.make_prompt(t, (pick(absent), b), (inc[0].color, inc[1].color))))
    elif t == "counting":
        cls, n = inc[0].cls, inc[0].count
        out.extend(("count", world.make_prompt(t, (cls,), count=m)) for m in (n - 1, n + 1) if m in NUMBERS)
        out.append(("class", world.make_prompt(t, (pick(absent),), count=n)))
    elif t == "position":
        b, (a, (rel, _)) = inc[0].cls, (inc[1].cls, inc[1].position)
        out.append(("relation", world.make_prompt(t, (a, b), relation=OPPOSITE[rel])))  # negated
        out.append(("relation", world.make_prompt(t, (b, a), relation=rel)))  # objects swapped
        out.extend(("relation", world.make_prompt(t, (a, b), relation=r)) for r in RELATIONS if r not in (rel, OPPOSITE[rel]))
        out.append(("class", world.make_prompt(t, (pick(absent), b), relation=rel)))
    return out


def degrade(image: np.ndarray, rng: np.random.Generator, blur_sigma: float = 1.0, noise_sigma: float = 0.05) -> np.ndarray:
    """A generated-looking copy of a render: Gaussian blur of `blur_sigma` pixels, then Gaussian
    noise of `noise_sigma` on the [0, 1] scale, clipped. (64, 64, 3) uint8 -> float32 in [0, 1]."""
    x = geneval.as_image(image)
    x = ndimage.gaussian_filter(x, sigma=(blur_sigma, blur_sigma, 0))
    return np.clip(x + rng.normal(0, noise_sigma, x.shape), 0, 1).astype(np.float32)


def measure(n: int, seed: int = 0, blur_sigma: float = 1.0, noise_sigma: float = 0.05, max_failures: int = 10) -> dict:
    """Runs the three accuracy checks on `n` scenes and times the evaluator. Returns a JSON-able dict."""
    cases = clean_cases(n, seed)
    scenes = [world.sample_scene(p, s) for p, s in cases]
    images = [world.render(s) for s in scenes]
    rng = np.random.default_rng(seed)

    wall, cpu = time.perf_counter(), time.process_time()
    verdicts = [geneval.evaluate_image(x, p) for x, (p, _) in zip(images, cases)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    clean = geneval.Report([p for p, _ in cases], verdicts)

    rejected: dict[str, list[bool]] = {}
    truly_false = []  # the generator's own check: the ground truth rejects every perturbation
    for (p, _), scene, v in zip(cases, scenes, verdicts):
        truth = geneval.oracle_detections(scene)
        for kind, bad in perturbations(p, scene, rng):
            truly_false.append(not geneval.apply_rules(truth, bad).correct)
            if truly_false[-1]:
                rejected.setdefault(kind, []).append(not geneval.apply_rules(v.detections, bad).correct)
    all_rejected = [r for rs in rejected.values() for r in rs]

    noisy = [geneval.evaluate_image(degrade(x, rng, blur_sigma, noise_sigma), p) for x, (p, _) in zip(images, cases)]
    failures = [f"{p.text!r} (seed {s}): {v.reason}" for (p, s), v in zip(cases, verdicts) if not v.correct]
    noisy_failures = [f"{p.text!r} (seed {s}): {v.reason}" for (p, s), v in zip(cases, noisy) if not v.correct]
    result = {
        "n_scenes": n,
        "seed": seed,
        "clean_accuracy": float(np.mean([v.correct for v in verdicts])),
        "clean_task_accuracy": clean.task_accuracy,
        "clean_failures": failures[:max_failures],
        "perturbed_rejection": float(np.mean(all_rejected)),
        "perturbed_n": len(all_rejected),
        "perturbed_truly_false": float(np.mean(truly_false)),
        "perturbed_rejection_by_kind": {k: float(np.mean(v)) for k, v in sorted(rejected.items())},
        "blur_sigma_px": blur_sigma,
        "noise_sigma": noise_sigma,
        "blur_noise_accuracy": float(np.mean([v.correct for v in noisy])),
        "blur_noise_failures": noisy_failures[:max_failures],
        "images_per_s": n / wall,
        "images_per_cpu_s": n / cpu,  # per second of CPU time: one core's rate, however loaded the machine
    }
    result["targets"] = TARGETS
    result["meets_targets"] = {k: result[k] >= v for k, v in TARGETS.items()}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lab bench geneval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/bench/geneval.json", help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="500 scenes instead of 5,000")
    parser.add_argument("--n", type=int, default=None, help="number of scenes (overrides --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = args.n or (500 if args.quick else 5000)
    import torch

    torch.set_num_threads(1)  # one core; numpy's work here is too small for BLAS threads
    result = measure(n, args.seed)
    from lab.provenance import write_json

    path = write_json({"benchmark": "geneval", **result}, args.out)
    print(f"{n} scenes: clean {result['clean_accuracy']:.2%}, perturbed rejected {result['perturbed_rejection']:.2%} "
          f"of {result['perturbed_n']}, blur+noise {result['blur_noise_accuracy']:.2%}, "
          f"{result['images_per_s']:.0f} images/s ({result['images_per_cpu_s']:.0f} per CPU-s) -> {path}")
    return result
