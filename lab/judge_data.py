"""Training and held-out data for the lab's judge: (image, prompt, yes/no) labelled by GenEval-mini.

    bank = sample_bank("S", n=2048, seed=JUDGE_SEED, cache="runs/judge_data")   # generated, cached
    images, prompts, labels = labelled_pairs(bank.images, bank.prompts, rng)     # own + perturbed prompts

The judge must learn what the generators really draw, so most of its images are samples of the
shipped models (S, L, pruned L) on training prompts, generated once and cached in chunks (an
interrupted generation resumes). Clean renders, blurred and noisy, add cheap hard negatives: each
image is paired with its own prompt and with prompts that break it the ways models fail (count
+-1, swapped relation or colours, a missing object). Every label is the exact evaluator's verdict,
never an assumption: a sample drawn for "two circles" that shows three is a "yes" for "three
circles". The SANA authors trained their NVILA verifier the same way (a detector labels samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab import geneval, world
from lab.sampling import SamplerConfig, generate_cached, model_cache_dir

JUDGE_SEED = 1_000_000_000  # judge-training samples start here: far from benchmark (0..) and scaling seeds


@dataclass
class SampleBank:
    """Generated images with the prompts they were drawn for. images (N, 64, 64, 3) uint8."""

    images: np.ndarray
    prompts: list[str]
    seeds: np.ndarray
    model: str

    def __len__(self) -> int:
        return len(self.prompts)


def training_prompts(n: int, seed: int) -> list[str]:
    """`n` prompts from the diffusion models' own training distribution (no held-out pairs)."""
    rng = np.random.default_rng(seed)
    return [world.sample_training_prompt(rng).text for _ in range(n)]


def sample_bank(
    model: str, n: int, seed: int, cache: str | Path, sampler: SamplerConfig = SamplerConfig(), progress: bool = True
) -> SampleBank:
    """`n` samples of `model` (a name or path for `lab.zoo.resolve_model`) on training prompts;
    image i uses prompt i of `training_prompts(n, seed)` and noise seed `seed + i`. Cached under
    `cache/<model>-<weights digest>/` (`lab.sampling.model_cache_dir`, `generate_cached`): a second
    or resumed call only generates what is missing, and a retrained model generates anew."""
    from lab.zoo import resolve_model

    prompts = training_prompts(n, seed)
    seeds = [seed + i for i in range(n)]
    folder = model_cache_dir(cache, model)
    images, _ = generate_cached(
        lambda: resolve_model(model), prompts, seeds, folder, sampler, progress, desc=f"judge samples {model}"
    )
    return SampleBank(images, prompts, np.array(seeds), str(model))


# --------------------------------------------------------------------------------------------
# Prompts an image may break, and evaluator labels


def confusable_prompts(prompt: world.Prompt, rng: np.random.Generator) -> list[world.Prompt]:
    """Prompts close to `prompt` that a model's sample often satisfies instead: count +-1, the
    opposite or swapped relation, swapped or changed colours, another class. Whether an image
    satisfies them is for the evaluator to say (they are candidates, not guaranteed negatives)."""
    t, inc = prompt.task, prompt.include
    shapes, colors = world.SHAPES, tuple(world.COLORS)

    def other(xs, *avoid):
        choices = [x for x in xs if x not in avoid]
        return choices[rng.integers(len(choices))]

    make = world.make_prompt
    if t in ("single_object", "colors"):
        cls, col = inc[0].cls, inc[0].color
        out = [
            make("colors", (cls,), (other(colors, col),)),
            make(t, (other(shapes, cls),), (col,)),
            make("counting", (cls,), count=2),
        ]
    elif t in ("two_object", "color_attr"):
        (a, ca), (b, cb) = (inc[0].cls, inc[0].color), (inc[1].cls, inc[1].color)
        out = [
            make(t, (other(shapes, a, b), b), (ca, cb)),
            make(t, (a, other(shapes, a, b)), (ca, cb)),
            make("single_object", (a,)) if t == "two_object" else make("color_attr", (a, b), (cb, ca)),
            make("color_attr", (a, b), (other(colors, ca, cb), cb or other(colors))),
        ]
    elif t == "counting":
        cls, n = inc[0].cls, inc[0].count
        out = [make(t, (cls,), count=m) for m in (n - 1, n + 1) if m in world.NUMBERS]
        out += [make("single_object", (cls,))] if n == 2 else []
        out.append(make(t, (other(shapes, cls),), count=n))
    elif t == "position":
        b, a, rel = inc[0].cls, inc[1].cls, inc[1].position[0]
        opposite = world.OPPOSITE_RELATION[rel]
        out = [
            make(t, (a, b), relation=opposite),
            make(t, (b, a), relation=rel),
            make(t, (a, b), relation=other(world.RELATIONS, rel, opposite)),
            make(t, (other(shapes, a, b), b), relation=rel),
        ]
    else:
        raise ValueError(f"unknown task {t!r}; expected one of {world.TASKS}")
    return [p for p in out if p.text != prompt.text]


@dataclass
class Pairs:
    """(image, prompt, label) pairs over a set of images: `images` (M, 64, 64, 3) uint8; per pair
    (P,) `image_index` into them, `prompts`, `labels` (the evaluator's verdict), `tasks`, `sources`."""

    images: np.ndarray
    image_index: np.ndarray
    prompts: list[str]
    labels: np.ndarray
    tasks: list[str]
    sources: list[str]

    def __len__(self) -> int:
        return len(self.prompts)

    def images_of(self, idx) -> np.ndarray:
        return self.images[self.image_index[idx]]

    @staticmethod
    def concat(parts: list[Pairs]) -> Pairs:
        offsets = np.cumsum([0] + [len(p.images) for p in parts[:-1]])
        return Pairs(
            np.concatenate([p.images for p in parts]),
            np.concatenate([p.image_index + o for p, o in zip(parts, offsets)]),
            [x for p in parts for x in p.prompts],
            np.concatenate([p.labels for p in parts]),
            [x for p in parts for x in p.tasks],
            [x for p in parts for x in p.sources],
        )


def label_pairs(
    images: np.ndarray, prompts: list[str], source: str, rng: np.random.Generator, negatives_per_image: int = 2
) -> Pairs:
    """Pairs each image with its own prompt and `negatives_per_image` confusable ones, labelled by
    the evaluator (objects are detected once per image, the rules applied per prompt)."""
    index, texts, labels, tasks = [], [], [], []
    for i, (image, text) in enumerate(zip(images, prompts)):
        prompt = world.parse_prompt(text)
        others = confusable_prompts(prompt, rng)
        chosen = [prompt] + [others[j] for j in rng.permutation(len(others))[:negatives_per_image]]
        detections = geneval.detect(image)
        for p in chosen:
            index.append(i)
            texts.append(p.text)
            labels.append(geneval.apply_rules(detections, p).correct)
            tasks.append(p.task)
    return Pairs(np.asarray(images), np.array(index), texts, np.array(labels, bool), tasks, [source] * len(texts))


MAX_BLUR, MAX_NOISE = 1.5, 0.08  # pixels, and sigma on [0, 1]: the range of a diffusion sample's blur and noise


def degraded_render(scene: world.Scene, rng: np.random.Generator) -> np.ndarray:
    """`scene` rendered, blurred by sigma ~ U(0, MAX_BLUR) pixels and noised by sigma ~ U(0,
    MAX_NOISE), like a sample of a diffusion model. (64, 64, 3) uint8."""
    from lab.bench.geneval import degrade

    x = degrade(world.render(scene), rng, rng.uniform(0, MAX_BLUR), rng.uniform(0, MAX_NOISE))
    return np.round(x * 255).astype(np.uint8)


def degraded_renders(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """`n` degraded renders (`degraded_render`) of training prompts. (n, 64, 64, 3) uint8 and the prompts."""
    rng = np.random.default_rng(seed)
    prompts = [world.sample_training_prompt(rng) for _ in range(n)]
    images = np.stack([degraded_render(world.sample_scene(p, int(rng.integers(2**31))), rng) for p in prompts])
    return images, [p.text for p in prompts]


def miscounted_renders(n: int, seed: int, offsets=(-1, 1)) -> tuple[np.ndarray, list[str], np.ndarray]:
    """`n` degraded renders of counting training prompts, each drawn with `offsets[i % len]` objects
    more than its prompt asks (never fewer than one): image-side count negatives. The world's scenes
    always hold the asked count, so without these a judge never sees five of a shape, and judge v7
    gave renders of one object too many a P(yes) as high as correct ones (0.66 vs 0.60 for "two").

    Returns:
        images (n, 64, 64, 3) uint8, the prompts they were drawn for (the asked count), and each
        image's offset (n,) int (objects drawn minus asked).
    """
    rng = np.random.default_rng(seed)
    only_counting = tuple(float(t == "counting") for t in world.TASKS)
    images, prompts, drawn = [], [], []
    for i in range(n):
        prompt = world.sample_training_prompt(rng, only_counting)
        asked = prompt.include[0].count
        count = max(1, asked + offsets[i % len(offsets)])
        scene = world.sample_scene(world.miscounted(prompt, count), int(rng.integers(2**31)))
        images.append(degraded_render(scene, rng))
        prompts.append(prompt.text)
        drawn.append(count - asked)
    return np.stack(images), prompts, np.array(drawn)


def judge_dataset(cfg, progress: bool = True) -> dict[str, Pairs]:
    """The judge's training and validation pairs for a `JudgeTrainConfig`: samples of each of
    `cfg.sample_models` (a held-out fraction of their images for validation) plus degraded renders
    and miscounted ones (`miscounted_renders`, labelled like the rest: "no" for the asked count)."""
    if len(cfg.sample_models) != len(cfg.samples_per_model):
        raise ValueError(f"{len(cfg.sample_models)} sample_models but {len(cfg.samples_per_model)} samples_per_model")
    rng = np.random.default_rng(cfg.seed)
    train, val = [], []
    for k, (model, n) in enumerate(zip(cfg.sample_models, cfg.samples_per_model)):
        bank = sample_bank(model, n, cfg.sample_seed + k * cfg.seed_stride, cfg.cache, progress=progress)
        cut = int(round(len(bank) * (1 - cfg.holdout_fraction)))
        train.append(label_pairs(bank.images[:cut], bank.prompts[:cut], model, rng, cfg.negatives_per_image))
        val.append(label_pairs(bank.images[cut:], bank.prompts[cut:], model, rng, cfg.negatives_per_image))
    if cfg.renders:
        images, prompts = degraded_renders(cfg.renders, cfg.seed)
        pairs = label_pairs(images, prompts, "render", rng, cfg.negatives_per_image)
        train.append(pairs)
        if not val:  # renders only (smoke tests): validate on a slice of them
            val.append(pairs)
    if cfg.miscounted_renders:  # last: the configs without them draw the same data as before
        images, prompts, _ = miscounted_renders(cfg.miscounted_renders, cfg.seed + 1)
        train.append(label_pairs(images, prompts, "render", rng, cfg.negatives_per_image))
    return {"train": Pairs.concat(train), "val": Pairs.concat(val)}
