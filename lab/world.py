"""The shapes world: procedurally rendered scenes of coloured shapes, described in GenEval's templates.

Everything the lab trains on and measures is drawn here, so ground truth is exact:

    prompt = sample_training_prompt(rng)        # a GenEval-style prompt with its metadata
    scene = sample_scene(prompt, seed=0)        # objects satisfying it, CLEVR-style margins
    image = render(scene)                       # (64, 64, 3) uint8, identical bytes for a seed

Prompts carry GenEval's metadata (task tag, required classes, counts, colours, relation), so the
evaluator (`lab.geneval`) judges any image against them. Colour–shape pairs in `NOVEL_PAIRS` are
never drawn by the training sampler (a CoGenT-style held-out split).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SIZE = 64  # pixels, height = width
BACKGROUND = (255, 255, 255)  # white: GenEval's palette minus this colour (and brown, see below)

# GenEval's colour names with fixed RGB values. Brown is left out: blurred onto white it is too
# close to orange and red for a 64x64 world to keep them unmistakable.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (235, 210, 0),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "purple": (130, 40, 170),
    "pink": (255, 120, 190),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "cross")
SHAPE_PAIRS = tuple((a, b) for a in SHAPES for b in SHAPES if a != b)  # ordered, 12
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
NUMBERS = {2: "two", 3: "three", 4: "four"}
RELATIONS = ("left of", "right of", "above", "below")
RELATION_AXES = (("left of", "right of"), ("above", "below"))  # each relation with its opposite: x, then y
OPPOSITE_RELATION = {r: o for axis in RELATION_AXES for r, o in (axis, axis[::-1])}
TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")

# Held out of training (CLEVR CoGenT style): one pair per shape, each colour at most once.
NOVEL_PAIRS = frozenset({("purple", "circle"), ("orange", "square"), ("green", "triangle"), ("pink", "cross")})

# GenEval's prompt counts per task (553 prompts in all).
GENEVAL_COUNTS = {
    "single_object": 80,
    "two_object": 99,
    "counting": 80,
    "colors": 94,
    "position": 100,
    "color_attr": 100,
}


@dataclass(frozen=True)
class WorldConfig:
    """Geometry of scenes. Sizes in pixels of the 64x64 image."""

    min_size: float = 14.0  # side of an object's bounding box
    max_size: float = 22.0
    border: float = 2.0  # empty pixels between any object and the image edge
    gap: float = 3.0  # empty pixels between the boxes of two objects (CLEVR-style margin)
    cross_arm: float = 0.35  # half-width of a cross's arms, as a fraction of its half-size
    supersample: int = 4  # anti-aliasing: render at 4x, average down
    relation_margin: float = 0.1  # GenEval's POSITION_THRESHOLD
    relation_strength: float = 0.7  # training scenes make the asked relation hold at >= this (GenEval: 0.5)
    max_tries: int = 200  # rejection-sampling attempts per scene


DEFAULT_WORLD = WorldConfig()


@dataclass(frozen=True)
class Object:
    """One shape in a scene. `cx, cy` is the centre and `size` the side of the bounding box, in pixels."""

    shape: str
    color: str
    cx: float
    cy: float
    size: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in pixels; y grows downward."""
        h = self.size / 2
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)


@dataclass(frozen=True)
class Scene:
    objects: tuple[Object, ...]


@dataclass(frozen=True)
class Requirement:
    """GenEval's `include`/`exclude` entry: `count` objects of `cls` (with `color`), optionally placed
    `position = (relation, index)` relative to the requirement at `index`."""

    cls: str
    count: int = 1
    color: str | None = None
    position: tuple[str, int] | None = None

    def to_json(self) -> dict:
        d = {"class": self.cls, "count": self.count}
        if self.color is not None:
            d["color"] = self.color
        if self.position is not None:
            d["position"] = list(self.position)
        return d

    @staticmethod
    def from_json(d: dict) -> Requirement:
        pos = d.get("position")
        return Requirement(d["class"], int(d.get("count", 1)), d.get("color"), tuple(pos) if pos else None)


@dataclass(frozen=True)
class Prompt:
    """A prompt with GenEval's metadata (the `tag` is the task)."""

    text: str
    task: str
    include: tuple[Requirement, ...]
    exclude: tuple[Requirement, ...] = field(default=())

    def to_json(self) -> dict:
        return {
            "tag": self.task,
            "prompt": self.text,
            "include": [r.to_json() for r in self.include],
            "exclude": [r.to_json() for r in self.exclude],
        }

    @staticmethod
    def from_json(d: dict) -> Prompt:
        for key in ("tag", "prompt", "include"):
            if key not in d:
                raise ValueError(f"prompt entry {d!r} lacks the key {key!r}; expected tag, prompt, include[, exclude]")
        if d["tag"] not in TASKS:
            raise ValueError(f"unknown task tag {d['tag']!r}; expected one of {TASKS}")
        for r in list(d["include"]) + list(d.get("exclude", [])):
            _check_requirement_names(r)
        return Prompt(
            d["prompt"],
            d["tag"],
            tuple(Requirement.from_json(r) for r in d["include"]),
            tuple(Requirement.from_json(r) for r in d.get("exclude", [])),
        )


def _check_requirement_names(r: dict) -> None:
    if r.get("class") not in SHAPES:
        raise ValueError(f"unknown class {r.get('class')!r}; expected one of {SHAPES}")
    if r.get("color") is not None and r["color"] not in COLORS:
        raise ValueError(f"unknown colour {r['color']!r}; expected one of {tuple(COLORS)}")
    if r.get("position") is not None and (len(r["position"]) != 2 or r["position"][0] not in RELATIONS):
        raise ValueError(f"bad position {r['position']!r}; expected [relation, index] with relation in {RELATIONS}")


# --------------------------------------------------------------------------------------------
# Prompts: GenEval's six templates


def _with_article(color: str | None, shape: str) -> str:
    noun = f"{color} {shape}" if color else shape
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


PHOTO_PREFIX = "a photo of"  # GenEval's templates start so; the bare forms leave it out


def make_prompt(
    task: str,
    shapes: tuple[str, ...],
    colors: tuple[str | None, ...] = (),
    count: int = 1,
    relation: str | None = None,
    photo: bool = True,
) -> Prompt:
    """Builds the GenEval prompt of `task` for the given classes (and colours, count, relation).

    Without colours (and with `photo`) the text is GenEval's template exactly; colours may also be
    given to `counting` ("two red circles") and `position` prompts, and `photo=False` leaves out
    "a photo of" (the bare forms people type). The metadata carries every colour, so GenEval's
    rules judge them too.
    """
    colors = tuple(colors) + (None,) * (len(shapes) - len(colors))
    lead = f"{PHOTO_PREFIX} " if photo else ""
    if task in ("single_object", "colors"):
        text = f"{lead}{_with_article(colors[0], shapes[0])}"
        return Prompt(text, task, (Requirement(shapes[0], 1, colors[0]),))
    if task in ("two_object", "color_attr"):
        text = f"{lead}{_with_article(colors[0], shapes[0])} and {_with_article(colors[1], shapes[1])}"
        return Prompt(text, task, (Requirement(shapes[0], 1, colors[0]), Requirement(shapes[1], 1, colors[1])))
    if task == "counting":
        noun = f"{colors[0]} {PLURALS[shapes[0]]}" if colors[0] else PLURALS[shapes[0]]
        text = f"{lead}{NUMBERS[count]} {noun}"
        return Prompt(text, task, (Requirement(shapes[0], count, colors[0]),), (Requirement(shapes[0], count + 1),))
    if task == "position":
        text = f"{lead}{_with_article(colors[0], shapes[0])} {relation} {_with_article(colors[1], shapes[1])}"
        # GenEval stores the second object first and points the first one at it.
        return Prompt(
            text, task, (Requirement(shapes[1], 1, colors[1]), Requirement(shapes[0], 1, colors[0], (relation, 0)))
        )
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def enumerate_prompts(task: str, novel: bool = False) -> list[Prompt]:
    """Every distinct prompt of `task`. With `novel=True`, only colour prompts naming a held-out pair
    (colour tasks only); otherwise no prompt names a held-out pair."""
    pairs = [(c, s) for s in SHAPES for c in COLORS]
    seen = [p for p in pairs if (p in NOVEL_PAIRS) == novel]
    if novel and task not in ("colors", "color_attr"):
        raise ValueError(f"the novel-compositions split has colour tasks only, not {task!r}")
    if task == "single_object":
        return [make_prompt(task, (s,)) for s in SHAPES]
    if task == "two_object":
        return [make_prompt(task, (a, b)) for a in SHAPES for b in SHAPES if a != b]
    if task == "counting":
        return [make_prompt(task, (s,), count=n) for s in SHAPES for n in NUMBERS]
    if task == "colors":
        return [make_prompt(task, (s,), (c,)) for c, s in seen]
    if task == "position":
        return [make_prompt(task, (a, b), relation=r) for a in SHAPES for b in SHAPES if a != b for r in RELATIONS]
    if task == "color_attr":
        # GenEval: different classes and different colours. Novel: at least one held-out pair.
        out = []
        for c1, a in pairs:
            for c2, b in pairs:
                if a == b or c1 == c2:
                    continue
                has_novel = (c1, a) in NOVEL_PAIRS or (c2, b) in NOVEL_PAIRS
                if has_novel == novel:
                    out.append(make_prompt(task, (a, b), (c1, c2)))
        return out
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def build_prompt_set(counts: dict[str, int], seed: int, novel: bool = False) -> list[Prompt]:
    """A fixed benchmark set: for each task, its distinct prompts in a seeded shuffled order, cycled
    until `counts[task]` (so small tasks repeat evenly, large ones are subsampled)."""
    rng = np.random.default_rng(seed)
    out = []
    for task, n in counts.items():
        pool = enumerate_prompts(task, novel)
        order = []
        while len(order) < n:
            order.extend(rng.permutation(len(pool)).tolist())
        out.extend(pool[i] for i in order[:n])
    return out


def task_probabilities(task_weights: tuple[float, ...]) -> np.ndarray:
    """Relative weights per TASKS -> probabilities (read-only). Raises ValueError naming what is accepted."""
    return _task_probabilities(tuple(task_weights))


@functools.lru_cache(maxsize=16)
def _task_probabilities(task_weights: tuple[float, ...]) -> np.ndarray:
    # cached: sample_training_prompt asks once per prompt, 512 times per training step at batch 512
    w = np.asarray(task_weights, dtype=np.float64)
    if w.shape != (len(TASKS),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"task_weights must be {len(TASKS)} non-negative numbers, not all 0, one per task "
            f"{TASKS}; got {task_weights}"
        )
    p = w / w.sum()
    p.flags.writeable = False
    return p


def sample_training_prompt(rng: np.random.Generator, task_weights: tuple[float, ...] = ()) -> Prompt:
    """A random task (uniform, or by `task_weights`, relative, one per TASKS), then a uniformly
    random prompt of it that names no held-out pair."""
    task = (
        TASKS[rng.choice(len(TASKS), p=task_probabilities(task_weights))]
        if task_weights
        else TASKS[rng.integers(len(TASKS))]
    )
    if task == "color_attr":  # too many to enumerate per call: sample directly, reject held-out
        while True:
            a, b = rng.choice(len(SHAPES), 2, replace=False)
            c1, c2 = rng.choice(len(COLORS), 2, replace=False)
            names = list(COLORS)
            p = ((names[c1], SHAPES[a]), (names[c2], SHAPES[b]))
            if not (set(p) & NOVEL_PAIRS):
                return make_prompt(task, (SHAPES[a], SHAPES[b]), (names[c1], names[c2]))
    pool = _prompt_pool(task)
    return pool[rng.integers(len(pool))]


_POOLS: dict[str, list[Prompt]] = {}


def _prompt_pool(task: str) -> list[Prompt]:
    if task not in _POOLS:
        _POOLS[task] = enumerate_prompts(task)
    return _POOLS[task]


# --------------------------------------------------------------------------------------------
# Prompt language: words, parsing, files


def vocabulary() -> list[str]:
    """Every word any prompt of the world uses, sorted."""
    words = (
        {"a", "an", "photo", "of", "and"} | set(COLORS) | set(SHAPES) | set(PLURALS.values()) | set(NUMBERS.values())
    )
    for r in RELATIONS:
        words |= set(r.split())
    return sorted(words)


def unknown_words(text: str) -> list[str]:
    """Words of `text` the world does not know (case-insensitive), in order of appearance."""
    known = set(vocabulary())
    return [w for w in text.lower().split() if w not in known]


GRAMMAR = (
    "['a photo of'] then one of: 'a [color] {obj}', 'a [color] {A} and a [color] {B}', "
    "'{two,three,four} [color] {objs}', 'a [color] {A} {left of,right of,above,below} a [color] {B}' "
    f"(A differs from B; colours: {', '.join(COLORS)}; shapes: {', '.join(SHAPES)})"
)
_PLURAL_SHAPES = {plural: shape for shape, plural in PLURALS.items()}
_WORD_NUMBERS = {word: n for n, word in NUMBERS.items()}


def parse_prompt(text: str) -> Prompt:
    """Reads a prompt of the world's language (`GRAMMAR`) back into GenEval's metadata.

    The language is GenEval's six templates plus what people type: colours with counts ("two red
    circles"), colours in position prompts ("a red circle left of a blue square") and the bare
    forms without "a photo of". The returned prompt's text is the canonical spelling ("an orange",
    not "a orange"); the stored prompt sets parse back to themselves.

    Raises ValueError naming unknown words or, for known words in no form, the grammar accepted.
    """
    words = text.lower().split()
    if not words:
        raise ValueError(f"empty prompt; expected e.g. 'a photo of a red circle' ({GRAMMAR})")
    bad = unknown_words(text)
    if bad:
        raise ValueError(f"unknown words {bad} in prompt {text!r}; the world knows: {', '.join(vocabulary())}")
    photo = words[:3] == PHOTO_PREFIX.split()
    prompt = _parse_body(words[3:] if photo else words, photo)
    if prompt is None:
        raise ValueError(f"prompt {text!r} fits none of the world's forms: {GRAMMAR}")
    return prompt


def _parse_object(words: list[str]) -> tuple[str | None, str, int] | None:
    """'a [color] shape' at the start of `words` -> (color, shape, words used), or None."""
    if len(words) < 2 or words[0] not in ("a", "an"):
        return None
    if words[1] in COLORS and len(words) > 2 and words[2] in SHAPES:
        return words[1], words[2], 3
    return (None, words[1], 2) if words[1] in SHAPES else None


def _parse_body(w: list[str], photo: bool) -> Prompt | None:
    if w and w[0] in _WORD_NUMBERS:  # "{two,three,four} [color] {objs}"
        color = w[1] if len(w) == 3 and w[1] in COLORS else None
        if len(w) == 2 + (color is not None) and w[-1] in _PLURAL_SHAPES:
            return make_prompt("counting", (_PLURAL_SHAPES[w[-1]],), (color,), _WORD_NUMBERS[w[0]], photo=photo)
        return None
    first = _parse_object(w)
    if first is None:
        return None
    c1, a, used = first
    rest = w[used:]
    if not rest:
        return make_prompt("colors" if c1 else "single_object", (a,), (c1,), photo=photo)
    link = next((r for r in ("and", *RELATIONS) if rest[: len(r.split())] == r.split()), None)
    second = _parse_object(rest[len(link.split()) :]) if link else None
    if second is None or len(link.split()) + second[2] != len(rest) or second[1] == a:
        return None  # GenEval's rules match objects by class: two objects need two shapes
    c2, b, _ = second
    if link == "and":
        return make_prompt("color_attr" if c1 or c2 else "two_object", (a, b), (c1, c2), photo=photo)
    return make_prompt("position", (a, b), (c1, c2), relation=link, photo=photo)


_TRAINING_TEXTS: set[str] = set()


def in_training_distribution(text: str) -> bool:
    """Whether `text`, word for word (case aside), is a prompt `sample_training_prompt` can draw:
    GenEval's templates with "a photo of", no colour on counts or positions, no held-out pair."""
    try:
        prompt = parse_prompt(text)
    except ValueError:
        return False
    if text.lower().split() != prompt.text.split():
        return False  # e.g. "a orange circle": the model never saw that spelling
    if prompt.task == "color_attr":
        (c1, a), (c2, b) = ((r.color, r.cls) for r in prompt.include)
        return (
            prompt.text.startswith(PHOTO_PREFIX)
            and None not in (c1, c2)
            and c1 != c2
            and not ({(c1, a), (c2, b)} & NOVEL_PAIRS)
        )
    if not _TRAINING_TEXTS:
        _TRAINING_TEXTS.update(p.text for task in TASKS if task != "color_attr" for p in _prompt_pool(task))
    return prompt.text in _TRAINING_TEXTS


PROMPT_SETS = ("quick", "full", "novel")
_DATA = Path(__file__).parent / "data"


def load_prompts(name_or_path: str) -> list[Prompt]:
    """Loads a prompt set by name (`quick`, `full`, `novel`) or from a GenEval-style JSONL file."""
    path = _DATA / f"prompts_{name_or_path}.jsonl" if name_or_path in PROMPT_SETS else Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"no prompt set {name_or_path!r}; expected one of {PROMPT_SETS} or a path to a .jsonl file")
    prompts = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            prompts.append(Prompt.from_json(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"{path}:{i}: malformed prompt entry ({e}); expected GenEval metadata JSON per line"
            ) from e
    if not prompts:
        raise ValueError(f"{path} holds no prompts")
    return prompts


def write_prompts(prompts: list[Prompt], path: str | Path) -> None:
    Path(path).write_text("".join(json.dumps(p.to_json()) + "\n" for p in prompts))


# Seeds of the stored sets: changing them changes the benchmark.
PROMPT_SET_SEED = {"full": 0, "quick": 1, "novel": 2}
QUICK_PER_TASK = 20
NOVEL_COUNTS = {"colors": 50, "color_attr": 50}


def build_standard_prompt_sets() -> dict[str, list[Prompt]]:
    """The three stored sets: GenEval-mini (`full`), its `quick` subset, and `novel` compositions."""
    full = build_prompt_set(GENEVAL_COUNTS, PROMPT_SET_SEED["full"])
    rng = np.random.default_rng(PROMPT_SET_SEED["quick"])
    quick = []
    for task in TASKS:
        idx = [i for i, p in enumerate(full) if p.task == task]
        quick.extend(full[i] for i in sorted(rng.choice(idx, QUICK_PER_TASK, replace=False)))
    novel = build_prompt_set(NOVEL_COUNTS, PROMPT_SET_SEED["novel"], novel=True)
    return {"full": full, "quick": quick, "novel": novel}


# --------------------------------------------------------------------------------------------
# Geometry shared with the evaluator


def relations_between(box_a, box_b, margin: float = DEFAULT_WORLD.relation_margin) -> dict[str, float]:
    """GenEval's position rule: the relations of A to B with their strengths.

    Offset = centre(A) - centre(B), each axis shrunk by `margin` x (size_A + size_B) (floored at 0),
    divided by the norm of the original offset. A relation holds when its strength exceeds 0.5.
    Boxes are (x0, y0, x1, y1) in pixels, y downward. Returns {relation: strength}.
    """
    ax0, ay0, ax1, ay1 = box_a
    bx0, by0, bx1, by1 = box_b
    off = np.array([(ax0 + ax1 - bx0 - bx1) / 2, (ay0 + ay1 - by0 - by1) / 2])
    dims = np.array([ax1 - ax0 + bx1 - bx0, ay1 - ay0 + by1 - by0])
    norm = float(np.linalg.norm(off))
    revised = np.maximum(np.abs(off) - margin * dims, 0) * np.sign(off)
    if norm == 0 or np.all(np.abs(revised) < 1e-3):
        return {r: 0.0 for r in RELATIONS}
    dx, dy = revised / norm
    return {"left of": -dx, "right of": dx, "above": -dy, "below": dy}


# --------------------------------------------------------------------------------------------
# Scenes


def miscounted(prompt: Prompt, count: int) -> Prompt:
    """A counting prompt whose requirement asks `count` objects instead (its text unchanged): what
    `sample_scene` draws for it is a render that breaks the prompt by count, a judge's image-side
    negative. `count` >= 1; a scene of up to `max(NUMBERS) + 1` objects still fits."""
    from dataclasses import replace

    if prompt.task != "counting" or count < 1:
        raise ValueError(f"miscounted({prompt.text!r}, {count}): expected a counting prompt and a count >= 1")
    return replace(prompt, include=(replace(prompt.include[0], count=count),))


def sample_scene(prompt: Prompt, seed: int, world: WorldConfig = DEFAULT_WORLD) -> Scene:
    """A random scene that satisfies `prompt` exactly (same seed -> same scene).

    Unspecified colours are drawn so that no held-out pair (NOVEL_PAIRS) appears unless the prompt
    names it; relations hold at `relation_strength` on their axis and not at all on the other.
    """
    rng = np.random.default_rng(seed)
    specs: list[tuple[str, str | None]] = []
    for req in prompt.include:
        specs.extend([(req.cls, req.color)] * req.count)
    for _ in range(world.max_tries):
        colors = [c if c is not None else _free_color(s, rng) for s, c in specs]
        objects = _place(specs, colors, rng, world)
        if objects is None:
            continue
        if prompt.task != "position" or _relation_is_clear(prompt, objects, world):
            return Scene(tuple(objects))
    raise RuntimeError(f"could not place a scene for {prompt.text!r} in {world.max_tries} tries")


def _free_color(shape: str, rng: np.random.Generator) -> str:
    allowed = [c for c in COLORS if (c, shape) not in NOVEL_PAIRS]
    return allowed[rng.integers(len(allowed))]


def _place(specs, colors, rng, world: WorldConfig) -> list[Object] | None:
    objects: list[Object] = []
    boxes: list[tuple[float, float, float, float]] = []
    span = world.max_size - world.min_size
    for (shape, _), color in zip(specs, colors):
        for _ in range(world.max_tries):
            # One try = three uniform draws. `rng.random(3)` and the arithmetic below give exactly the
            # numbers of `rng.uniform(min_size, max_size)`, `rng.uniform(lo, hi)` x 2 (numpy computes
            # low + (high - low) * next_double), so scenes are unchanged; it is only faster.
            u_size, u_x, u_y = rng.random(3).tolist()
            size = world.min_size + span * u_size
            lo, hi = world.border + size / 2, IMAGE_SIZE - world.border - size / 2
            cx, cy = lo + (hi - lo) * u_x, lo + (hi - lo) * u_y
            h = size / 2
            box = (cx - h, cy - h, cx + h, cy + h)  # = Object.box, without building the Object
            if all(_boxes_apart(box, b, world.gap) for b in boxes):
                objects.append(Object(shape, color, cx, cy, size))
                boxes.append(box)
                break
        else:
            return None
    return objects


def _boxes_apart(a: tuple[float, ...], b: tuple[float, ...], gap: float) -> bool:
    """Whether boxes (x0, y0, x1, y1) are at least `gap` pixels apart on some axis."""
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    return ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0


def _relation_is_clear(prompt: Prompt, objects: list[Object], world: WorldConfig) -> bool:
    # include = (B, A at relation of B): objects[0] is B, objects[1] is A.
    relation = prompt.include[1].position[0]
    strengths = relations_between(objects[1].box, objects[0].box, world.relation_margin)
    others = [v for r, v in strengths.items() if r != relation]
    return strengths[relation] >= world.relation_strength and max(others) < 0.5


def shape_mask(
    shape: str, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, size: float, world: WorldConfig = DEFAULT_WORLD
) -> np.ndarray:
    """Boolean mask of `shape` with centre (cx, cy) and box side `size`, at pixel coordinates xs, ys."""
    r = size / 2
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "triangle":  # apex up, base at the bottom of the box
        return (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    if shape == "cross":
        a = world.cross_arm * r
        inside = (np.abs(dx) <= r) & (np.abs(dy) <= r)
        return inside & ((np.abs(dx) <= a) | (np.abs(dy) <= a))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render(scene: Scene, world: WorldConfig = DEFAULT_WORLD) -> np.ndarray:
    """Draws a scene. Returns (64, 64, 3) uint8 RGB, anti-aliased by supersampling."""
    img = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
    img[:] = BACKGROUND
    k = world.supersample
    offsets = _subpixel_offsets(k)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.box
        px0, py0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
        px1, py1 = min(math.ceil(x1) + 1, IMAGE_SIZE), min(math.ceil(y1) + 1, IMAGE_SIZE)
        w, h = px1 - px0, py1 - py0
        if w <= 0 or h <= 0:  # entirely outside the image
            continue
        # sample centres of the k x k sub-pixels of each pixel in the box
        m = shape_mask(
            obj.shape, px0 + offsets[None, : w * k], py0 + offsets[: h * k, None], obj.cx, obj.cy, obj.size, world
        )
        cover = (_block_count(m, k) / (k * k))[..., None]  # fraction of sub-pixels inside, (h, w, 1)
        region = img[py0:py1, px0:px1]
        region[:] = region * (1 - cover) + np.asarray(COLORS[obj.color], np.float32) * cover
    return np.round(img).astype(np.uint8)


_OFFSETS: dict[int, np.ndarray] = {}


def _subpixel_offsets(k: int) -> np.ndarray:
    """(arange(n * k) + 0.5) / k for any n up to the image size (+2 for the box's rounding), cached."""
    if k not in _OFFSETS:
        _OFFSETS[k] = (np.arange((IMAGE_SIZE + 2) * k) + 0.5) / k
    return _OFFSETS[k]


def _block_count(mask: np.ndarray, k: int) -> np.ndarray:
    """Number of True values in each k x k block of `mask` (h*k, w*k) -> (h, w) integers.

    Same numbers as `mask.reshape(h, k, w, k).sum(axis=(1, 3))`, about 4x faster: k strided adds
    in uint8 (which holds counts up to 255, so larger k takes the plain sum).
    """
    hk, wk = mask.shape
    if k * k > np.iinfo(np.uint8).max:
        return mask.reshape(hk // k, k, wk // k, k).sum(axis=(1, 3))
    rows = mask.view(np.uint8).reshape(hk // k, k, wk)
    count = rows[:, 0].copy()
    for i in range(1, k):
        count += rows[:, i]
    cols = count.reshape(hk // k, wk // k, k)
    total = cols[..., 0].copy()
    for i in range(1, k):
        total += cols[..., i]
    return total


def render_prompt(prompt: Prompt | str, seed: int, world: WorldConfig = DEFAULT_WORLD) -> np.ndarray:
    """`render(sample_scene(prompt, seed))`; a string is parsed first. Returns (64, 64, 3) uint8."""
    if isinstance(prompt, str):
        prompt = parse_prompt(prompt)
    return render(sample_scene(prompt, seed, world), world)


def training_batch(
    seed: int, batch_size: int, world: WorldConfig = DEFAULT_WORLD, task_weights: tuple[float, ...] = ()
) -> tuple[list[str], np.ndarray]:
    """The training stream at one position: (prompts, images (B, 64, 64, 3) uint8), a pure function
    of `seed` (and the task mix) so an interrupted run that resumes at the same step sees the same data."""
    rng = np.random.default_rng(seed)
    prompts = [sample_training_prompt(rng, task_weights) for _ in range(batch_size)]
    seeds = rng.integers(0, 2**63 - 1, size=batch_size)
    images = np.stack([render(sample_scene(p, int(s), world), world) for p, s in zip(prompts, seeds)])
    return [p.text for p in prompts], images
