"""`lab bench geneval`: the evaluator's three accuracy targets and its speed, measured.

- clean: renders judged against their true prompts must be 100% correct (prompts from the stored
  sets, novel included, and from the training sampler);
- perturbed: the same renders against prompts made false (wrong colour, wrong class, count +-1,
  swapped/negated relation) must be rejected >= 99.5% of the time;
- blur + noise: Gaussian blur (sigma 1 px) then Gaussian noise (sigma 0.05 on [0, 1]) must keep
  >= 98% correct on true prompts;
- speed: images/s of `evaluate_image` on one core (goal >= 200);
- touching: pairs and groups of 3-4 objects whose boxes are 0, 1, 1.5, 2, 3 px apart, clean and
  blurred + noisy, judged on true prompts (>= 98% at every gap >= 1 px, >= 90% touching);
- false pass: images with no object (Gaussian noise, blurred noise, uniform colour frames, decoded
  random latents of the shipped VAE, samples of an untrained model) must pass <= 1% of the prompts
  of every task;
- unrecognised shapes (squares rotated 15-45 deg, an X, a thick plus, an upside-down triangle) must
  not pass prompts naming a class (<= 1% of images pass any).

The stress images are drawn by `lab.bench._geneval_stress`, independently of `lab.world`'s renderer.

The helpers (`clean_cases`, `perturbations`, `degrade`) are also used by tests/test_geneval.py.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from lab import geneval, world
from lab.bench import _geneval_stress as stress
from lab.world import COLORS, NUMBERS, RELATIONS, SHAPES, Prompt, Scene

TARGETS = {"clean_accuracy": 1.0, "perturbed_rejection": 0.995, "blur_noise_accuracy": 0.98, "images_per_s": 200.0}
GAPS = (0.0, 1.0, 1.5, 2.0, 3.0)  # pixels between neighbouring boxes in the touching section
TOUCHING_TARGET = 0.90  # correct on true prompts when touching (gap 0)
NEAR_TARGET = 0.98  # correct on true prompts at every gap >= 1 px, clean and blurred
FALSE_PASS_TARGET = 0.01  # most a task's prompts may pass on an image with no object
ODD_PASS_TARGET = 0.01  # most images of an unrecognised shape that may pass a prompt naming a class
PROMPTS_PER_TASK = 5  # prompts of each task each junk image is judged against
FULL_SIZES = {"touching": 400, "junk": 500, "latents": 256, "untrained": 128, "odd": 200}  # images per case
QUICK_SIZES = {"touching": 4, "junk": 20, "latents": 0, "untrained": 0, "odd": 6}  # 0 = skipped
UNTRAINED_SIZE = "S"  # the untrained model's named size (lab.model.SIZES)
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
        out.extend(
            ("relation", world.make_prompt(t, (a, b), relation=r)) for r in RELATIONS if r not in (rel, OPPOSITE[rel])
        )
        out.append(("class", world.make_prompt(t, (pick(absent), b), relation=rel)))
    return out


def degrade(
    image: np.ndarray, rng: np.random.Generator, blur_sigma: float = 1.0, noise_sigma: float = 0.05
) -> np.ndarray:
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


def touching(n: int, seed: int = 0, evaluator=geneval) -> dict:
    """Accuracy on true prompts of `n` pairs/groups per gap in GAPS, clean and blur 1 px + noise 0.05.
    `evaluator` is a module with `evaluate_image` (another version of the evaluator, for before/after)."""
    rng = np.random.default_rng(seed)
    out = {}
    for gap in GAPS:
        cases = stress.touching_cases(gap, n, rng)
        clean = [evaluator.evaluate_image(x, p).correct for x, p in cases]
        blurred = [evaluator.evaluate_image(degrade(x, rng), p).correct for x, p in cases]
        out[f"{gap:g}"] = {"clean": float(np.mean(clean)), "blur_noise": float(np.mean(blurred)), "n": n}
    return out


def junk_sources(sizes: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Images with no object, per kind: (n, 64, 64, 3) float in [0, 1] or uint8. Decoded random
    latents use the shipped VAE (`checkpoints/vae`), untrained samples an untrained `UNTRAINED_SIZE`
    transformer with that VAE; either is skipped (size 0) in quick mode."""
    rng = np.random.default_rng(seed)
    out = {kind: stress.junk_images(kind, sizes["junk"], rng) for kind in stress.JUNK_KINDS}
    if sizes["latents"] or sizes["untrained"]:
        import torch
        from diffusers import AutoencoderDC

        from lab.provenance import REPO_ROOT

        vae = AutoencoderDC.from_pretrained(REPO_ROOT / "checkpoints" / "vae").eval()
        if sizes["latents"]:
            from lab.vae import tensor_to_images

            c, f = vae.config.latent_channels, 2 ** (len(vae.config.encoder_block_out_channels) - 1)
            z = torch.randn(
                sizes["latents"],
                c,
                world.IMAGE_SIZE // f,
                world.IMAGE_SIZE // f,
                generator=torch.Generator().manual_seed(seed),
            )
            with torch.no_grad():
                out["decoded random latents"] = tensor_to_images(vae.decode(z / vae.config.scaling_factor).sample)
        if sizes["untrained"]:
            from lab.model import build_pipeline
            from lab.sampling import generate

            torch.manual_seed(seed)
            pipe = build_pipeline(UNTRAINED_SIZE, vae=vae)
            pipe.set_progress_bar_config(disable=True)
            prompts = world.load_prompts("full")
            chosen = [prompts[i].text for i in rng.integers(len(prompts), size=sizes["untrained"])]
            out["untrained model"] = generate(pipe, chosen, list(range(seed, seed + len(chosen))))
    return out


def false_pass(images: dict[str, np.ndarray], seed: int = 0, evaluator=geneval) -> dict:
    """Per kind and task, the fraction of (image, prompt) judged correct, each image judged against
    PROMPTS_PER_TASK prompts of every task from the stored full set."""
    rng = np.random.default_rng(seed)
    full = world.load_prompts("full")
    by_task = {t: [p for p in full if p.task == t] for t in world.TASKS}
    out = {}
    for kind, batch in images.items():
        passed: dict[str, list[bool]] = {t: [] for t in world.TASKS}
        for x in batch:
            dets = evaluator.detect(x)
            rules = getattr(evaluator, "apply_rules", None) or evaluator.judge  # the evaluator before the rename
            for t, pool in by_task.items():
                for i in rng.integers(len(pool), size=PROMPTS_PER_TASK):
                    passed[t].append(rules(dets, pool[i]).correct)
        out[kind] = {"n_images": len(batch), **{t: float(np.mean(v)) for t, v in passed.items()}}
    return out


def odd_shapes(n: int, seed: int = 0, evaluator=geneval) -> dict:
    """Per shape the world never draws: the fraction of `n` images (clean, and blur 1 px + noise
    0.05) that pass any of "a photo of a {class}" and "a photo of a {colour} {class}" for the four classes."""
    rng = np.random.default_rng(seed)
    prompts = [world.make_prompt("single_object", (s,)) for s in world.SHAPES]
    prompts += [world.make_prompt("colors", (s,), (c,)) for s in world.SHAPES for c in world.COLORS]
    rules = getattr(evaluator, "apply_rules", None) or evaluator.judge
    out = {}
    for name in stress.ODD_SHAPES:
        images = stress.odd_shape_cases(name, n, rng)
        res = {}
        for cond, batch in (("clean", images), ("blur_noise", [degrade(x, rng) for x in images])):
            passes = []
            for x in batch:
                dets = evaluator.detect(x)
                passes.append(any(rules(dets, p).correct for p in prompts))
            res[cond] = float(np.mean(passes))
        out[name] = res
    return out


def stress_sections(sizes: dict, seed: int = 0, evaluator=geneval) -> dict:
    """The touching, false-pass and unrecognised-shape sections with their targets judged."""
    near = touching(sizes["touching"], seed, evaluator)
    junk = false_pass(junk_sources(sizes, seed), seed, evaluator)
    odd = odd_shapes(sizes["odd"], seed, evaluator)
    worst_near = min(min(v["clean"], v["blur_noise"]) for g, v in near.items() if float(g) >= 1)
    worst_touch = min(near["0"]["clean"], near["0"]["blur_noise"])
    worst_junk = max(r for v in junk.values() for t, r in v.items() if t in world.TASKS)
    worst_odd = max(r for v in odd.values() for r in v.values())
    return {
        "touching": near,
        "false_pass": junk,
        "unrecognised_shapes": odd,
        "stress_targets": {
            "touching_accuracy": TOUCHING_TARGET,
            "near_accuracy": NEAR_TARGET,
            "false_pass_per_task": FALSE_PASS_TARGET,
            "unrecognised_pass": ODD_PASS_TARGET,
        },
        "stress_meets_targets": {
            "touching_accuracy": worst_touch >= TOUCHING_TARGET,
            "near_accuracy": worst_near >= NEAR_TARGET,
            "false_pass_per_task": worst_junk <= FALSE_PASS_TARGET,
            "unrecognised_pass": worst_odd <= ODD_PASS_TARGET,
        },
        "stress_worst": {
            "touching_accuracy": worst_touch,
            "near_accuracy": worst_near,
            "false_pass_per_task": worst_junk,
            "unrecognised_pass": worst_odd,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lab bench geneval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/bench/geneval.json", help="JSON file to write")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="500 scenes instead of 5,000; small stress sections, no VAE or untrained model",
    )
    parser.add_argument("--n", type=int, default=None, help="number of scenes (overrides --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = args.n or (500 if args.quick else 5000)
    import torch

    torch.set_num_threads(1)  # one core; numpy's work here is too small for BLAS threads
    result = measure(n, args.seed)
    result.update(stress_sections(QUICK_SIZES if args.quick else FULL_SIZES, args.seed))
    from lab.provenance import write_json

    path = write_json({"benchmark": "geneval", **result}, args.out)
    print(
        f"{n} scenes: clean {result['clean_accuracy']:.2%}, perturbed rejected {result['perturbed_rejection']:.2%} "
        f"of {result['perturbed_n']}, blur+noise {result['blur_noise_accuracy']:.2%}, "
        f"{result['images_per_s']:.0f} images/s ({result['images_per_cpu_s']:.0f} per CPU-s) -> {path}"
    )
    worst = result["stress_worst"]
    print(
        f"touching {worst['touching_accuracy']:.1%}, gaps >= 1 px {worst['near_accuracy']:.1%} (worst case), "
        f"false pass <= {worst['false_pass_per_task']:.1%} per task, unrecognised shapes pass {worst['unrecognised_pass']:.1%}"
    )
    return result
