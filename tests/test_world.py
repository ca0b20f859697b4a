"""The shapes world: determinism, scenes that satisfy their prompts, the held-out split, the stored sets."""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pytest

from lab import world
from lab.world import COLORS, GENEVAL_COUNTS, IMAGE_SIZE, NOVEL_PAIRS, SHAPES, TASKS

# sha256 of training_batch(0, 32) (image bytes, then the prompt texts), computed with the lab's
# first renderer. If it changes, every stored image, checkpoint and benchmark number changes too.
GOLDEN_BATCH_SHA256 = "4d7d728ab5ce15e52119728f28586e012528734529327ab8cea0c3d50c1739f6"


def _training_prompts(n: int, seed: int = 0) -> list[world.Prompt]:
    rng = np.random.default_rng(seed)
    return [world.sample_training_prompt(rng) for _ in range(n)]


def _stored_prompts() -> list[world.Prompt]:
    return [p for name in world.PROMPT_SETS for p in world.load_prompts(name)]


# ---------------------------------------------------------------- determinism


def test_same_seed_renders_identical_bytes():
    for prompt in _training_prompts(50):
        a, b = world.render_prompt(prompt, seed=7), world.render_prompt(prompt, seed=7)
        assert a.dtype == np.uint8 and a.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        assert a.tobytes() == b.tobytes()


def test_different_seeds_render_different_scenes():
    prompt = world.parse_prompt("a photo of three circles")
    images = {world.render_prompt(prompt, seed=s).tobytes() for s in range(10)}
    assert len(images) == 10


def test_training_batch_matches_the_golden_bytes():
    texts, images = world.training_batch(0, 32)
    digest = hashlib.sha256(images.tobytes() + "\n".join(texts).encode()).hexdigest()
    assert digest == GOLDEN_BATCH_SHA256


def test_render_skips_objects_outside_the_image():
    inside = world.Object("circle", "red", 20.0, 20.0, 16.0)
    outside = world.Object("square", "blue", 100.0, 100.0, 16.0)
    assert np.array_equal(world.render(world.Scene((inside, outside))), world.render(world.Scene((inside,))))


# ---------------------------------------------------------------- scenes satisfy their prompts


@pytest.mark.parametrize("source", ["stored", "training"])
def test_scenes_satisfy_their_prompts(source):
    prompts = _stored_prompts()[::2] if source == "stored" else _training_prompts(400)
    cfg = world.DEFAULT_WORLD
    for i, prompt in enumerate(prompts):
        objects = world.sample_scene(prompt, seed=i).objects
        # exactly the required objects: the counts, and the colours where named
        wanted = sorted((r.cls, r.color) for r in prompt.include for _ in range(r.count))
        got = sorted(
            (o.shape, o.color if any(r.color for r in prompt.include if r.cls == o.shape) else None) for o in objects
        )
        assert got == wanted, prompt.text
        for o in objects:  # inside the image, with the border kept
            x0, y0, x1, y1 = o.box
            assert cfg.min_size <= o.size <= cfg.max_size
            assert min(x0, y0) >= cfg.border - 1e-9 and max(x1, y1) <= IMAGE_SIZE - cfg.border + 1e-9
        for a, b in itertools.combinations(objects, 2):  # CLEVR-style margin between boxes
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box, b.box
            assert ax1 + cfg.gap <= bx0 or bx1 + cfg.gap <= ax0 or ay1 + cfg.gap <= by0 or by1 + cfg.gap <= ay0
        if prompt.task == "position":  # include = (B, A rel B): objects[1] is A
            rel = prompt.include[1].position[0]
            strengths = world.relations_between(objects[1].box, objects[0].box)
            assert strengths[rel] >= cfg.relation_strength
            assert all(v < 0.5 for r, v in strengths.items() if r != rel)


def test_relations_between_follows_genevals_margin_rule():
    a, b = (0, 0, 10, 10), (12, 0, 22, 10)  # centres 12 apart on x, sizes 10 + 10
    s = world.relations_between(a, b)
    assert s["left of"] > 0.5 and s["right of"] < 0 and s["above"] == 0 and s["below"] == 0
    # offset 2 <= 0.1 * (10 + 10): shrunk to zero, no relation at all
    assert all(v == 0 for v in world.relations_between((0, 0, 10, 10), (2, 0, 12, 10)).values())
    # GenEval's rule gives a 45-degree diagonal both relations (each axis 18 / 28.3 > 0.5)
    d = world.relations_between((0, 0, 10, 10), (20, 20, 30, 30))
    assert d["left of"] > 0.5 and d["above"] > 0.5


# ---------------------------------------------------------------- the held-out split


def _named_pairs(prompt: world.Prompt) -> set[tuple[str, str]]:
    return {(r.color, r.cls) for r in prompt.include if r.color is not None}


def test_training_sampler_never_emits_a_novel_pair_in_many_samples():
    prompts = _training_prompts(20_000, seed=1)
    for p in prompts:
        assert not _named_pairs(p) & NOVEL_PAIRS, p.text
        words = p.text.split()
        assert not {(c, s) for c, s in zip(words, words[1:])} & NOVEL_PAIRS, p.text
    for i, p in enumerate(prompts[:5000]):
        assert not {(o.color, o.shape) for o in world.sample_scene(p, seed=i).objects} & NOVEL_PAIRS, p.text


class _ScriptedRng:
    """Stands in for np.random.Generator: `integers` and `choice` return scripted values in turn,
    so a test can drive the sampler through every branch it has."""

    def __init__(self, integers=(), choices=()):
        self._integers, self._choices = list(integers), list(choices)

    def integers(self, n):
        value = self._integers.pop(0)
        assert 0 <= value < n
        return value

    def choice(self, n, size, replace):
        return np.array(self._choices.pop(0))


def test_training_sampler_cannot_emit_a_novel_pair_by_construction():
    # (1) every pooled task: the pools are all the sampler can return, and none names a held-out pair
    for task in TASKS:
        if task != "color_attr":
            assert all(not _named_pairs(p) & NOVEL_PAIRS for p in world._prompt_pool(task))
    # (2) color_attr: drive the rejection loop through all 4*3 class and 8*7 colour draws in turn;
    # each draw naming a held-out pair is rejected and the next one returned
    draws = [
        (ab, cc)
        for ab in itertools.permutations(range(len(SHAPES)), 2)
        for cc in itertools.permutations(range(len(COLORS)), 2)
    ]
    names = list(COLORS)
    for start in range(len(draws)):
        script = draws[start:]
        choices = [x for ab, cc in script for x in (ab, cc)]
        p = world.sample_training_prompt(_ScriptedRng([TASKS.index("color_attr")], choices))
        first_ok = next(
            (ab, cc)
            for ab, cc in script
            if not {(names[cc[0]], SHAPES[ab[0]]), (names[cc[1]], SHAPES[ab[1]])} & NOVEL_PAIRS
        )
        (a, b), (c1, c2) = first_ok
        assert p == world.make_prompt("color_attr", (SHAPES[a], SHAPES[b]), (names[c1], names[c2]))
    # (3) colours the prompt leaves free: every value _free_color can return, for each shape
    for shape in SHAPES:
        n = len([c for c in COLORS if (c, shape) not in NOVEL_PAIRS])
        free = {world._free_color(shape, _ScriptedRng([i])) for i in range(n)}
        assert free == {c for c in COLORS if (c, shape) not in NOVEL_PAIRS}


def test_novel_split_names_only_held_out_pairs():
    novel = world.load_prompts("novel")
    assert len(novel) == 100 and {p.task for p in novel} == {"colors", "color_attr"}
    assert all(_named_pairs(p) & NOVEL_PAIRS for p in novel)
    for name in ("full", "quick"):
        assert not any(_named_pairs(p) & NOVEL_PAIRS for p in world.load_prompts(name))


# ---------------------------------------------------------------- stored prompt sets


def test_full_set_has_genevals_per_task_counts():
    full = world.load_prompts("full")
    assert len(full) == 553
    assert (
        {t: sum(p.task == t for p in full) for t in TASKS}
        == GENEVAL_COUNTS
        == {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100}
    )


def test_quick_set_has_twenty_per_task_drawn_from_full():
    quick, full = world.load_prompts("quick"), world.load_prompts("full")
    assert {t: sum(p.task == t for p in quick) for t in TASKS} == dict.fromkeys(TASKS, 20)
    assert all(p in full for p in quick)


def test_stored_files_equal_the_builder_output(tmp_path):
    built = world.build_standard_prompt_sets()
    for name in world.PROMPT_SETS:
        assert world.load_prompts(name) == built[name], name
        world.write_prompts(built[name], tmp_path / f"{name}.jsonl")
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (world._DATA / f"prompts_{name}.jsonl").read_bytes(), name


def test_parse_prompt_round_trips_every_stored_prompt():
    for p in _stored_prompts():
        assert world.parse_prompt(p.text) == p


def test_parse_prompt_names_unknown_words():
    with pytest.raises(ValueError, match=r"unknown words \['teal', 'hexagon'\]"):
        world.parse_prompt("a photo of a teal hexagon")


def test_parse_prompt_rejects_known_words_in_no_template():
    with pytest.raises(ValueError, match="fits none of the world.s forms"):
        world.parse_prompt("a photo of circle red")


def test_malformed_prompt_file_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(world.parse_prompt("a photo of a circle").to_json())
    path.write_text(f'{good}\n{good}\n{{"tag": "colors", "prompt": "x"}}\n')
    with pytest.raises(ValueError, match=rf"{path}:3: malformed prompt entry"):
        world.load_prompts(str(path))
    path.write_text(f"{good}\nnot json\n")
    with pytest.raises(ValueError, match=rf"{path}:2:"):
        world.load_prompts(str(path))


def test_unknown_prompt_set_lists_the_accepted_names():
    with pytest.raises(ValueError, match="expected one of"):
        world.load_prompts("nonexistent")


def test_benchmark_writes_scenes_per_second(tmp_path):
    from lab.bench import world as bench

    out = tmp_path / "world.json"
    bench.main(["--n", "100", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["scenes_per_s"] > 0 and set(data["stages_per_s"]) == {
        "sample_training_prompt",
        "sample_scene",
        "render",
    }


# ---------------------------------------------------------------- the prompt language people type

# One example per form of world.GRAMMAR (each also without "a photo of"), colours on every slot
# that takes one, so render -> judge covers every way a requirement can carry metadata.
GRAMMAR_FORMS = {
    "object": "a triangle",
    "coloured object": "a red circle",
    "two objects": "a square and a cross",
    "two coloured objects": "a yellow triangle and a blue square",
    "two objects, one coloured": "a circle and a black cross",
    "count": "three squares",
    "coloured count": "two red circles",
    "position": "a circle above a triangle",
    "coloured position": "a red circle left of a blue square",
    "position, one coloured": "a cross below a pink square",
}
RENDER_SEEDS = range(3)


def _grammar_prompts() -> list[str]:
    return [f"{lead}{body}" for body in GRAMMAR_FORMS.values() for lead in ("a photo of ", "")]


@pytest.mark.parametrize("text", _grammar_prompts())
def test_every_grammar_form_renders_scenes_the_evaluator_judges_correct(text):
    from lab import geneval

    prompt = world.parse_prompt(text)
    assert prompt.text == text
    for seed in RENDER_SEEDS:
        verdict = geneval.evaluate_image(world.render_prompt(text, seed), prompt)
        assert verdict.correct, (text, seed, verdict.reason)


def test_colours_in_counts_and_positions_reach_the_requirements():
    count = world.parse_prompt("a photo of two red circles")
    assert count.task == "counting" and count.include == (world.Requirement("circle", 2, "red"),)
    pos = world.parse_prompt("a red circle left of a blue square")
    assert pos.include == (
        world.Requirement("square", 1, "blue"),
        world.Requirement("circle", 1, "red", ("left of", 0)),
    )


def test_a_wrong_colour_fails_a_coloured_count():
    from lab import geneval

    image = world.render_prompt("two blue circles", seed=0)
    assert not geneval.evaluate_image(image, world.parse_prompt("two red circles")).correct


def test_two_objects_of_one_shape_are_refused_with_the_grammar():
    with pytest.raises(ValueError, match="A differs from B"):
        world.parse_prompt("a red circle left of a blue circle")


def test_stored_prompt_sets_keep_genevals_templates():
    for p in _stored_prompts():
        assert p.text.startswith("a photo of ")
        assert p.task in ("colors", "color_attr") or all(r.color is None for r in p.include), p.text


def test_training_distribution_is_what_the_training_sampler_draws():
    assert all(world.in_training_distribution(p.text) for p in _training_prompts(300))
    outside = [
        "two red circles",
        "a photo of two red circles",
        "a photo of a red circle left of a blue square",
        "a photo of a purple circle",
        "a photo of a orange circle",
        "a photo of a teal circle",
        "",
    ]
    assert not any(world.in_training_distribution(t) for t in outside)


def test_a_miscounted_prompt_keeps_its_text_and_draws_the_other_count():
    prompt = world.make_prompt("counting", ("circle",), count=4)
    five = world.miscounted(prompt, 5)
    assert five.text == prompt.text and len(world.sample_scene(five, seed=0).objects) == 5
    with pytest.raises(ValueError, match="expected a counting prompt and a count >= 1"):
        world.miscounted(world.make_prompt("single_object", ("circle",)), 2)
    with pytest.raises(ValueError, match="count >= 1"):
        world.miscounted(prompt, 0)
