"""GenEval-mini: judges any 64x64 image against a GenEval prompt with GenEval's own rules.

Two stages, as in GenEval (research/geneval.md):

    detections = detect(image)                 # objects: shape, colour, box, score
    verdict = evaluate_image(image, prompt)     # GenEval's rules on the prompt's metadata
    report = evaluate(images, prompts)          # per-task accuracy; overall = mean of the tasks
    print(report.table())                       # with a 95% bootstrap interval (report.interval())
    diff = compare(report_a, report_b)          # paired difference on identical prompts and seeds

The detector (`lab.detector`) replaces GenEval's Mask2Former + CLIP colour classifier with what the
shapes world allows: ink components split into instances when objects touch, non-objects (noise,
specks, frames of one colour) dropped, colour from each object's core, shape from the best-fitting
template, and an `UNRECOGNISED` shape for what none of the four classes fits. It is exact on clean
renders and robust to the blurry, noisy, off-colour images a diffusion model makes (lab bench
geneval measures both). Scores carry bootstrap intervals (`lab.bootstrap`); `compare` pairs two
reports on identical prompts and seeds.

Samples on disk (`save_samples`/`load_samples`) use one of two layouts:
- a folder of PNGs named `{prompt_index:05d}_{sample:02d}.png` (GenEval-like: one prompt, several
  samples), or
- an `.npz` file with `images` (N, 64, 64, 3) uint8 and `prompt_index` (N,) integers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab import world
from lab.bootstrap import DEFAULT_BOOTSTRAP, BootstrapConfig, Interval, bootstrap
from lab.detector import DEFAULT_EVAL, UNRECOGNISED, Detection, EvalConfig, find_objects
from lab.world import (
    COLORS,
    IMAGE_SIZE,
    PLURALS,
    TASKS,
    Prompt,
    Requirement,
    Scene,
)

_RANGE_TOLERANCE = 1e-3  # float images may overshoot [0, 1] by this much (decoder rounding) and are clipped


@dataclass(frozen=True)
class Verdict:
    """GenEval's judgement of one image: `correct`, a human-readable `reason`, and what was seen."""

    correct: bool
    reason: str
    detections: tuple[Detection, ...] = ()


# --------------------------------------------------------------------------------------------
# Input: one image or a batch, validated


def as_image(image) -> np.ndarray:
    """Validates one image and returns it as (64, 64, 3) float32 in [0, 1].

    Accepts a PIL image in mode RGB, or an array-like (64, 64, 3) of uint8 (0..255) or float (0..1).
    Raises ValueError naming the shape, dtype, mode or value range otherwise.
    """
    if hasattr(image, "mode") and hasattr(image, "size"):  # a PIL image
        if image.mode != "RGB":
            raise ValueError(f"PIL image in mode {image.mode!r}; expected mode 'RGB' (use image.convert('RGB'))")
    a = np.asarray(image)
    if a.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"image of shape {a.shape}; expected ({IMAGE_SIZE}, {IMAGE_SIZE}, 3) RGB, channels last")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = float(a.min()), float(a.max())
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
            raise ValueError(f"float image with values in [{lo:.3g}, {hi:.3g}]; expected values in [0, 1]")
        return np.clip(a, 0, 1).astype(np.float32)
    raise ValueError(f"image of dtype {a.dtype}; expected uint8 (0..255) or float (0..1)")


def as_batch(images) -> list[np.ndarray]:
    """Validates a batch: an array (N, 64, 64, 3) or a sequence of images. Returns a list of
    (64, 64, 3) float32 arrays in [0, 1]."""
    if isinstance(images, np.ndarray) or hasattr(images, "__array__") and not hasattr(images, "mode"):
        a = np.asarray(images)
        if a.ndim != 4:
            raise ValueError(
                f"a batch of shape {a.shape}; expected (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3) or a list of "
                "images (for one image use evaluate_image)"
            )
        return [as_image(x) for x in a]
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise ValueError(
            f"images of type {type(images).__name__}; expected an array (N, 64, 64, 3) or a list of images"
        )
    return [as_image(x) for x in images]


def _as_prompt(prompt: Prompt | str) -> Prompt:
    return world.parse_prompt(prompt) if isinstance(prompt, str) else prompt


# --------------------------------------------------------------------------------------------
# Detection: components -> colour from the core -> shape by the best-fitting template


def detect(image, config: EvalConfig = DEFAULT_EVAL) -> list[Detection]:
    """Finds the objects in one image (`lab.detector`: instances, non-objects dropped, unknown shapes named).

    Args:
        image: (64, 64, 3) uint8 or float in [0, 1], or a PIL RGB image (see `as_image`).
    Returns:
        one Detection per object found; GenEval's score thresholds are applied by the rules
        (`apply_rules`), not here.
    """
    return find_objects(as_image(image), config)


def oracle_detections(scene: Scene) -> list[Detection]:
    """The detections a perfect detector would return for a rendered scene (score 1, exact boxes):
    the ground truth the rules are checked against in tests and benchmarks."""
    return [
        Detection(o.shape, o.color, o.box, int(round(o.size**2)), 1.0, tuple(v / 255 for v in COLORS[o.color]))
        for o in scene.objects
    ]


# --------------------------------------------------------------------------------------------
# GenEval's rules (evaluate_images.py: `evaluate`), on the detections


def apply_rules(detections: Sequence[Detection], prompt: Prompt | str, config: EvalConfig = DEFAULT_EVAL) -> Verdict:
    """Applies GenEval's rules to detections: presence, exact counts (N + 1 fails), colour, position.

    Extra objects of classes the prompt does not name are never penalised. Detections of an
    `UNRECOGNISED` shape never count as a class; a failing verdict's reason names them.
    """
    prompt = _as_prompt(prompt)
    threshold = config.counting_min_score if prompt.task == "counting" else config.min_score
    # GenEval: per class, detections above the threshold, most confident first, at most MAX_OBJECTS.
    by_class: dict[str, list[Detection]] = {}
    for d in sorted(detections, key=lambda d: -d.score):
        if d.score > threshold and len(by_class.setdefault(d.shape, [])) < config.max_per_class:
            by_class[d.shape].append(d)
    reasons = []
    matched_groups: list[list[Detection] | None] = []
    for req in prompt.include:
        found = by_class.get(req.cls, [])[: req.count]
        problem = _check_requirement(req, found, by_class, matched_groups, prompt, config)
        if problem:
            reasons.append(problem)
        matched_groups.append(None if problem else found)
    for req in prompt.exclude:
        n = len(by_class.get(req.cls, []))
        if n >= req.count:
            reasons.append(f"expected at most {_count(req.count - 1, req.cls)}, found {n}")
    unknown = sum(d.shape == UNRECOGNISED for d in detections)
    if reasons and unknown:  # say what was seen instead: it never counts as any class
        reasons.append(f"{unknown} {UNRECOGNISED}{'s' if unknown > 1 else ''} seen, counted as no class")
    kept = tuple(d for ds in by_class.values() for d in ds)
    return Verdict(not reasons, "; ".join(reasons) if reasons else "all requirements met", kept)


def count_error(verdict: Verdict, prompt: Prompt | str) -> int | None:
    """For a counting prompt, the objects of the counted class the rules kept (`verdict.detections`)
    minus the count asked: 0 when right, +1 for one too many (the generators' commonest counting
    failure). None for prompts of other tasks."""
    prompt = _as_prompt(prompt)
    if prompt.task != "counting":
        return None
    req = prompt.include[0]
    return sum(d.shape == req.cls for d in verdict.detections) - req.count


def _check_requirement(req: Requirement, found, by_class, matched_groups, prompt: Prompt, config: EvalConfig) -> str:
    """GenEval's checks of one `include` entry, in its order; returns the failure ('' when met)."""
    if len(found) < req.count:
        return f"expected {_count(req.count, req.cls)}, found {len(by_class.get(req.cls, []))}"
    if req.color is not None:
        # GenEval classifies the colour of the `count` matched (most confident) objects only.
        colors = [d.color for d in found]
        if colors.count(req.color) < req.count:
            if req.count == 1:
                return f"{req.cls} is {colors[0]}, expected {req.color}"
            return f"expected {req.count} {req.color} {_plural(req.cls)}, found {', '.join(colors)}"
    if req.position is not None:
        relation, target = req.position
        target_cls = prompt.include[target].cls
        if matched_groups[target] is None:
            return f"no {target_cls} found for the {req.cls} to be {relation}"
        # GenEval: every matched object must stand in the relation to every matched target.
        for obj in found:
            for tgt in matched_groups[target]:
                held = relations_held(obj.box, tgt.box, config)
                if relation not in held:
                    seen = " and ".join(held) if held else "not clearly placed relative to"
                    return f"expected {req.cls} {relation} {target_cls}, found it {seen} the {target_cls}"
    return ""


def relations_held(box_a, box_b, config: EvalConfig = DEFAULT_EVAL) -> list[str]:
    """GenEval's position rule: the relations of box A to box B (x0, y0, x1, y1 pixels) whose
    strength exceeds `config.relation_strength`, in `world.RELATIONS` order."""
    strengths = world.relations_between(box_a, box_b, config.relation_margin)
    return [r for r, s in strengths.items() if s > config.relation_strength]


def _count(n: int, cls: str) -> str:
    return f"{n} {cls if n == 1 else _plural(cls)}"


def _plural(cls: str) -> str:
    return PLURALS.get(cls, cls + "s")  # a prompt file may name a class the world lacks


def evaluate_image(image, prompt: Prompt | str, config: EvalConfig = DEFAULT_EVAL) -> Verdict:
    """Detects the objects of one image and judges them against `prompt` (a Prompt or its text)."""
    return apply_rules(detect(image, config), prompt, config)


# --------------------------------------------------------------------------------------------
# Many images: per-task accuracy


@dataclass
class Report:
    """Verdicts of a set of images with their prompts; accuracy per task and overall."""

    prompts: list[Prompt]
    verdicts: list[Verdict]
    names: list[str] = field(default_factory=list)  # per image, e.g. file names; optional
    prompt_indices: list[int] = field(default_factory=list)  # per image, index into its prompt set; optional
    seeds: list[int] = field(default_factory=list)  # per image, the generation seed; optional

    @property
    def groups(self) -> list:
        """Per image, the prompt it was generated for: its index when known, else its text."""
        return list(self.prompt_indices) if self.prompt_indices else [p.text for p in self.prompts]

    def interval(self, config: BootstrapConfig = DEFAULT_BOOTSTRAP) -> Interval:
        """Overall and per-task scores with bootstrap intervals over prompts and images (`lab.bootstrap`)."""
        return bootstrap([v.correct for v in self.verdicts], [p.task for p in self.prompts], self.groups, config)

    @property
    def task_accuracy(self) -> dict[str, float]:
        """Fraction of images judged correct, per task present, in GenEval's task order."""
        out = {}
        for task in TASKS:
            hits = [v.correct for p, v in zip(self.prompts, self.verdicts) if p.task == task]
            if hits:
                out[task] = float(np.mean(hits))
        return out

    @property
    def overall(self) -> float:
        """GenEval's overall score: plain mean of the per-task accuracies (of the tasks present)."""
        acc = self.task_accuracy
        return float(np.mean(list(acc.values()))) if acc else float("nan")

    def table(self) -> str:
        lines = [f"{'task':<15}{'accuracy':>10}{'correct':>10}"]
        for task, acc in self.task_accuracy.items():
            hits = [v.correct for p, v in zip(self.prompts, self.verdicts) if p.task == task]
            lines.append(f"{task:<15}{acc:>10.1%}{f'{sum(hits)}/{len(hits)}':>10}")
        lo, hi = self.interval().overall_interval
        lines.append(
            f"{'overall':<15}{self.overall:>10.1%}   (mean of {len(self.task_accuracy)} tasks; "
            f"95% bootstrap interval {lo:.1%}-{hi:.1%})"
        )
        return "\n".join(lines)

    def to_json(self) -> dict:
        images = []
        for i, (p, v) in enumerate(zip(self.prompts, self.verdicts)):
            entry = {"name": self.names[i]} if self.names else {}
            if self.prompt_indices:
                entry["prompt_index"] = self.prompt_indices[i]
            entry.update(
                {
                    "index": i,
                    "tag": p.task,
                    "prompt": p.text,
                    "correct": v.correct,
                    "reason": v.reason,
                    "detections": [d.to_json() for d in v.detections],
                }
            )
            images.append(entry)
        if self.seeds:
            for entry, seed in zip(images, self.seeds):
                entry["seed"] = seed
        return {
            "overall": self.overall,
            "task_accuracy": self.task_accuracy,
            "n_images": len(self.verdicts),
            "interval": self.interval().to_json(),
            "images": images,
        }


def compare(report_a: Report, report_b: Report, config: BootstrapConfig = DEFAULT_BOOTSTRAP) -> Interval:
    """Paired difference of two reports on identical prompts and seeds: overall(a) - overall(b)
    and per task, with a bootstrap interval that resamples prompts and images jointly for both.

    Pairing cancels what the prompt and the initial noise share between the two models (most of
    a single score's spread, see `lab.bootstrap`). Raises ValueError unless image i of both reports
    has the same prompt (and prompt index and seed, where both reports record them).
    """
    a, b = report_a, report_b
    if len(a.verdicts) != len(b.verdicts):
        raise ValueError(
            f"reports of {len(a.verdicts)} and {len(b.verdicts)} images; a paired comparison needs the same images"
        )
    for what, x, y in (
        ("prompt", [p.text for p in a.prompts], [p.text for p in b.prompts]),
        ("prompt index", a.prompt_indices, b.prompt_indices),
        ("seed", a.seeds, b.seeds),
    ):
        if x and y and x != y:
            i = next(i for i, (u, v) in enumerate(zip(x, y)) if u != v)
            raise ValueError(
                f"image {i}: {what} {x[i]!r} vs {y[i]!r}; a paired comparison needs identical prompts and seeds"
            )
    diff = np.array([va.correct for va in a.verdicts], float) - np.array([vb.correct for vb in b.verdicts], float)
    return bootstrap(diff, [p.task for p in a.prompts], a.groups, config)


def evaluate(
    images, prompts: Sequence[Prompt | str], config: EvalConfig = DEFAULT_EVAL, names: Sequence[str] = ()
) -> Report:
    """Judges each image against its prompt.

    Args:
        images: (N, 64, 64, 3) uint8 or float in [0, 1], or a list of images (see `as_image`).
        prompts: N prompts (Prompt or text), one per image.
        names: optional N labels carried into the report (file names, ...).
    """
    batch = as_batch(images)
    if isinstance(prompts, (str, Prompt)):
        raise ValueError("prompts must be a list with one prompt per image, not a single prompt")
    if len(batch) != len(prompts):
        raise ValueError(f"{len(batch)} images but {len(prompts)} prompts; expected one prompt per image")
    if names and len(names) != len(batch):
        raise ValueError(f"{len(names)} names for {len(batch)} images; expected one per image or none")
    parsed = [_as_prompt(p) for p in prompts]
    return Report(parsed, [evaluate_image(x, p, config) for x, p in zip(batch, parsed)], list(names))


# --------------------------------------------------------------------------------------------
# Samples on disk (layout in the module docstring)

_SAMPLE_NAME = re.compile(r"^(\d{5})_(\d{2,})\.png$")
_PNG_LAYOUT = "{prompt_index:05d}_{sample:02d}.png"
_NPZ_LAYOUT = f"'images' (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3) uint8 and 'prompt_index' (N,) integers"


def prompt_set_digest(prompts: Sequence[Prompt]) -> str:
    """sha256 (hex) of a prompt set's metadata, in order: which prompts the indices refer to."""
    import hashlib
    import json

    return hashlib.sha256("".join(json.dumps(p.to_json()) + "\n" for p in prompts).encode()).hexdigest()


def save_samples(images, prompt_indices: Sequence[int], path: str | Path, prompt_set: str | None = None) -> Path:
    """Writes generated images in the layout `load_samples` reads: `.npz` if `path` ends so, else a
    folder of `{prompt_index:05d}_{sample:02d}.png` (samples numbered per prompt in order given).

    Args:
        images: (N, 64, 64, 3) uint8 or float in [0, 1], or a list of images.
        prompt_indices: N indices into the prompt set the images were generated for.
        prompt_set: that set's name or .jsonl path; an `.npz` stores it and its digest, so
            `evaluate_samples` refuses to judge the samples against another set.
    """
    batch = np.stack([np.round(x * 255).astype(np.uint8) for x in as_batch(images)])
    idx = np.asarray(prompt_indices, dtype=np.int64)
    if idx.shape != (len(batch),):
        raise ValueError(f"prompt_indices of shape {idx.shape} for {len(batch)} images; expected ({len(batch)},)")
    if (idx < 0).any():
        raise ValueError(f"negative prompt index {int(idx.min())}; expected indices >= 0")
    path = Path(path)
    if path.suffix == ".npz":
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = (
            {}
            if prompt_set is None
            else {
                "prompt_set": np.str_(prompt_set),
                "prompt_digest": np.str_(prompt_set_digest(world.load_prompts(prompt_set))),
            }
        )
        np.savez_compressed(path, images=batch, prompt_index=idx, **meta)
        return path
    from PIL import Image

    path.mkdir(parents=True, exist_ok=True)
    seen: dict[int, int] = {}
    for x, i in zip(batch, idx.tolist()):
        Image.fromarray(x).save(path / f"{i:05d}_{seen.get(i, 0):02d}.png")
        seen[i] = seen.get(i, 0) + 1
    return path


def load_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Reads samples saved by `save_samples`. Returns (images (N, 64, 64, 3) uint8, prompt_index (N,),
    names (N,)), ordered by prompt index then sample."""
    path = Path(path)
    if path.suffix == ".npz" and path.is_file():
        with np.load(path) as f:
            missing = {"images", "prompt_index"} - set(f.files)
            if missing:
                raise ValueError(f"{path} lacks the arrays {sorted(missing)}; expected {_NPZ_LAYOUT}")
            images, idx = f["images"], f["prompt_index"]
        if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or idx.shape != (len(images),):
            raise ValueError(
                f"{path}: images {images.shape} {images.dtype} and prompt_index {idx.shape}; expected {_NPZ_LAYOUT}"
            )
        order = np.argsort(idx, kind="stable")
        return images[order], idx[order].astype(np.int64), [f"{path.name}[{i}]" for i in order]
    if not path.is_dir():
        raise ValueError(f"no samples at {path}; expected a folder of {_PNG_LAYOUT} files or an .npz file")
    from PIL import Image

    files = list(path.glob("*.png"))
    bad = [f.name for f in files if not _SAMPLE_NAME.match(f.name)]
    if bad:
        raise ValueError(f"{path}: PNG names {sorted(bad)[:5]} do not follow {_PNG_LAYOUT}")
    if not files:
        raise ValueError(f"{path} holds no PNG samples; expected {_PNG_LAYOUT} files")
    keys = {f: tuple(int(g) for g in _SAMPLE_NAME.match(f.name).groups()) for f in files}  # (prompt, sample)
    files.sort(key=keys.__getitem__)
    images = []
    for f in files:
        with Image.open(f) as im:
            if im.mode != "RGB" or im.size != (IMAGE_SIZE, IMAGE_SIZE):
                raise ValueError(f"{f}: a {im.size[0]}x{im.size[1]} image in mode {im.mode!r}; expected 64x64 RGB")
            images.append(np.asarray(im))
    return np.stack(images), np.array([keys[f][0] for f in files], np.int64), [f.name for f in files]


def evaluate_samples(
    path: str | Path, prompts: str | Sequence[Prompt] = "quick", config: EvalConfig = DEFAULT_EVAL
) -> Report:
    """Judges samples saved by `save_samples` against the prompt set their indices refer to
    (a name `quick`, `full`, `novel`, a .jsonl path, or a list of Prompts)."""
    prompt_set = world.load_prompts(prompts) if isinstance(prompts, (str, Path)) else list(prompts)
    _check_sample_prompt_set(path, prompts, prompt_set)
    images, idx, names = load_samples(path)
    if idx.size and (idx.max() >= len(prompt_set) or idx.min() < 0):
        bad = int(idx.max() if idx.max() >= len(prompt_set) else idx.min())
        raise ValueError(
            f"{path}: prompt index {bad} is outside the prompt set of {len(prompt_set)} prompts "
            f"({prompts if isinstance(prompts, str) else 'given'}); expected 0..{len(prompt_set) - 1}"
        )
    report = evaluate(images, [prompt_set[i] for i in idx], config, names)
    report.prompt_indices = idx.tolist()
    return report


def _check_sample_prompt_set(path: str | Path, prompts, prompt_set: Sequence[Prompt]) -> None:
    """Raises ValueError when an `.npz` of samples records a prompt set other than `prompt_set`."""
    if Path(path).suffix != ".npz" or not Path(path).is_file():
        return
    with np.load(path) as f:
        if "prompt_digest" not in f.files:
            return  # saved without a prompt set: nothing to check
        name, digest = str(f["prompt_set"]), str(f["prompt_digest"])
    if digest != prompt_set_digest(prompt_set):
        given = prompts if isinstance(prompts, str | Path) else "the prompts given"
        raise ValueError(
            f"{path} holds samples made for the prompt set {name!r}, not {str(given)!r}; "
            f"judge them with --prompts {name}"
        )


def write_report(report: Report, path: str | Path, **extra) -> Path:
    """Writes `report.to_json()` (plus `extra` entries) with provenance."""
    from lab.provenance import write_json

    return write_json({**extra, **report.to_json()}, path)


def read_report(path: str | Path) -> Report:
    """Reads a report written by `write_report` back (prompts, verdicts with their detections, names,
    prompt indices and seeds), e.g. to `compare` two shipped models' verdicts."""
    import json

    data = json.loads(Path(path).read_text())
    if "images" not in data:
        raise ValueError(f"{path} holds no per-image verdicts ('images'); expected a file written by write_report")
    images = data["images"]
    prompts = [world.parse_prompt(e["prompt"]) for e in images]
    verdicts = [
        Verdict(
            e["correct"],
            e["reason"],
            tuple(
                Detection(d["shape"], d["color"], tuple(d["box"]), d["area"], d["score"], tuple(d["rgb"]))
                for d in e["detections"]
            ),
        )
        for e in images
    ]
    return Report(
        prompts,
        verdicts,
        [e["name"] for e in images] if images and "name" in images[0] else [],
        [e["prompt_index"] for e in images] if images and "prompt_index" in images[0] else [],
        [e["seed"] for e in images] if images and "seed" in images[0] else [],
    )


__all__ = [
    "EvalConfig",
    "DEFAULT_EVAL",
    "UNRECOGNISED",
    "Detection",
    "Verdict",
    "Report",
    "as_image",
    "as_batch",
    "detect",
    "apply_rules",
    "evaluate_image",
    "evaluate",
    "compare",
    "oracle_detections",
    "save_samples",
    "load_samples",
    "evaluate_samples",
    "prompt_set_digest",
    "write_report",
    "read_report",
]
