"""GenEval-mini: the detector on clean and degraded renders, GenEval's rules, inputs, samples on disk, CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from lab import cli, geneval, world
from lab.bench import _geneval_stress as stress
from lab.bench.geneval import clean_cases, degrade, perturbations
from lab.geneval import Detection
from lab.world import Object, Scene

N_CLEAN = 500  # the benchmark runs 5,000
N_DEGRADED = 250


@pytest.fixture(scope="module")
def rendered():
    """(prompt, scene, image, verdict) for N_CLEAN scenes from the stored sets and the training sampler."""
    out = []
    for prompt, seed in clean_cases(N_CLEAN, seed=1):
        scene = world.sample_scene(prompt, seed)
        image = world.render(scene)
        out.append((prompt, scene, image, geneval.evaluate_image(image, prompt)))
    return out


def _scene(*objects: tuple) -> np.ndarray:
    return world.render(Scene(tuple(Object(*o) for o in objects)))


# ---------------------------------------------------------------- accuracy targets (small samples)


def test_clean_renders_are_all_judged_correct(rendered):
    wrong = [(p.text, v.reason) for p, _, _, v in rendered if not v.correct]
    assert not wrong
    assert {p.task for p, *_ in rendered} == set(world.TASKS)
    assert any(p in world.load_prompts("novel") for p, *_ in rendered)


def test_detections_match_the_scene_objects(rendered):
    for _, scene, _, v in rendered[:100]:
        truth = sorted((o.shape, o.color) for o in scene.objects)
        assert sorted((d.shape, d.color) for d in v.detections) == truth
        for o in scene.objects:  # boxes within half a pixel
            d = min(v.detections, key=lambda d: np.abs(np.subtract(d.box, o.box)).sum())
            assert np.allclose(d.box, o.box, atol=0.5)


def test_perturbed_prompts_are_false_and_rejected(rendered):
    rng = np.random.default_rng(0)
    kinds, rejected = set(), []
    for prompt, scene, _, v in rendered:
        truth = geneval.oracle_detections(scene)
        for kind, bad in perturbations(prompt, scene, rng):
            assert not geneval.apply_rules(truth, bad).correct, (prompt.text, bad.text)  # the generator is sound
            kinds.add(kind)
            rejected.append(not geneval.apply_rules(v.detections, bad).correct)
    assert kinds == {"color", "class", "count", "relation"}
    assert len(rejected) > 3 * N_CLEAN and np.mean(rejected) >= 0.995


def test_blur_and_noise_keep_true_prompts_correct(rendered):
    rng = np.random.default_rng(0)
    ok = [
        geneval.evaluate_image(degrade(x, rng, blur_sigma=1.0, noise_sigma=0.05), p).correct
        for p, _, x, _ in rendered[:N_DEGRADED]
    ]
    assert np.mean(ok) >= 0.98


def test_colour_is_read_from_the_core_not_the_blurred_edge():
    # red blurred onto white is pink at the edges; the core must still say red
    image = _scene(("circle", "red", 32.0, 32.0, 14.0))
    blurred = degrade(image, np.random.default_rng(0), blur_sigma=1.5, noise_sigma=0.0)
    (d,) = geneval.detect(blurred)
    assert (d.shape, d.color) == ("circle", "red")


# ---------------------------------------------------------------- GenEval's rules


def test_counting_fails_on_n_plus_one():
    image = _scene(
        ("circle", "red", 14.0, 14.0, 16.0), ("circle", "blue", 48.0, 14.0, 16.0), ("circle", "green", 30.0, 48.0, 16.0)
    )
    assert geneval.evaluate_image(image, "a photo of three circles").correct
    two = geneval.evaluate_image(image, "a photo of two circles")
    assert not two.correct and two.reason == "expected at most 2 circles, found 3"
    four = geneval.evaluate_image(image, "a photo of four circles")
    assert not four.correct and four.reason == "expected 4 circles, found 3"


def test_count_error_is_objects_of_the_counted_class_minus_the_count_asked():
    image = _scene(
        ("circle", "red", 14.0, 14.0, 16.0), ("circle", "blue", 48.0, 14.0, 16.0), ("circle", "green", 14.0, 48.0, 16.0),
        ("square", "green", 48.0, 48.0, 16.0),
    )  # fmt: skip
    for prompt, error in (
        ("a photo of two circles", +1),
        ("a photo of three circles", 0),
        ("a photo of four circles", -1),
        ("a photo of a circle", None),  # not a counting prompt
    ):
        assert geneval.count_error(geneval.evaluate_image(image, prompt), prompt) == error


def test_extra_objects_of_other_classes_are_not_penalised():
    image = _scene(
        ("circle", "red", 14.0, 14.0, 16.0),
        ("circle", "red", 48.0, 14.0, 16.0),
        ("square", "blue", 14.0, 48.0, 16.0),
        ("cross", "black", 48.0, 48.0, 16.0),
    )
    for text in (
        "a photo of two circles",
        "a photo of a red circle",
        "a photo of a square",
        "a photo of a red circle and a blue square",
        "a photo of a cross below a circle",
    ):
        assert geneval.evaluate_image(image, text).correct, text


def test_colour_reason_names_found_and_expected_colours():
    image = _scene(("circle", "red", 32.0, 32.0, 16.0))
    v = geneval.evaluate_image(image, "a photo of a blue circle")
    assert not v.correct and v.reason == "circle is red, expected blue"


def test_colour_is_judged_on_the_most_confident_detection_like_geneval():
    blue = Detection("circle", "blue", (0, 0, 10, 10), 80, 0.95)
    red = Detection("circle", "red", (30, 30, 40, 40), 80, 0.90)
    assert not geneval.apply_rules([blue, red], "a photo of a red circle").correct
    assert geneval.apply_rules([dataclasses.replace(blue, score=0.85), red], "a photo of a red circle").correct


def test_detections_below_the_score_threshold_are_ignored():
    faint = Detection("circle", "red", (0, 0, 10, 10), 80, geneval.DEFAULT_EVAL.min_score)
    v = geneval.apply_rules([faint], "a photo of a circle")
    assert not v.correct and v.reason == "expected 1 circle, found 0"


@pytest.mark.parametrize("dy, holds", [(28.0, True), (31.0, False)])
def test_relation_needs_strength_above_one_half_after_the_margin(dy, holds):
    # B at the right, A 22 px to its left and dy px above: "left of" strength = (22 - 0.1 * 32) / |offset|
    b, a = ("square", "blue", 40.0, 10.0 + dy, 16.0), ("circle", "red", 18.0, 10.0, 16.0)
    strength = world.relations_between(Object(*a).box, Object(*b).box)["left of"]
    assert (strength > 0.5) == holds
    v = geneval.evaluate_image(_scene(a, b), "a photo of a circle left of a square")
    assert v.correct == holds
    if not holds:
        assert v.reason == "expected circle left of square, found it above the square"


def test_offsets_within_the_margin_give_no_relation():
    # centres 2 px apart on x: shrunk to nothing by 0.1 * (16 + 16), so neither side holds
    image = _scene(("circle", "red", 30.0, 12.0, 16.0), ("square", "blue", 32.0, 44.0, 16.0))
    for rel in ("left of", "right of"):
        assert not geneval.evaluate_image(image, f"a photo of a circle {rel} a square").correct
    assert geneval.evaluate_image(image, "a photo of a circle above a square").correct


# ---------------------------------------------------------------- the report


def test_overall_is_the_mean_of_task_accuracies_not_of_images():
    image = _scene(("circle", "red", 32.0, 32.0, 16.0))
    report = geneval.evaluate([image] * 3, ["a photo of a circle", "a photo of a circle", "a photo of two circles"])
    assert report.task_accuracy == {"single_object": 1.0, "counting": 0.0}
    assert report.overall == 0.5
    assert "single_object" in report.table() and "overall" in report.table()
    data = json.loads(json.dumps(report.to_json()))
    assert data["overall"] == 0.5 and data["images"][2]["reason"] == "expected 2 circles, found 1"


# ---------------------------------------------------------------- inputs


def test_accepts_uint8_float_pil_and_batches():
    image = _scene(("triangle", "green", 32.0, 32.0, 18.0))
    text = "a photo of a green triangle"
    for x in (image, image / 255.0, (image / 255).astype(np.float32), Image.fromarray(image)):
        assert geneval.evaluate_image(x, text).correct
    report = geneval.evaluate(np.stack([image, image]), [text, text])
    assert [v.correct for v in report.verdicts] == [True, True]
    assert geneval.evaluate([Image.fromarray(image)], [world.parse_prompt(text)]).overall == 1.0


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((64, 64), np.uint8), r"shape \(64, 64\); expected \(64, 64, 3\)"),
        (np.zeros((64, 64, 4), np.uint8), r"shape \(64, 64, 4\); expected \(64, 64, 3\)"),
        (np.zeros((32, 32, 3), np.uint8), r"shape \(32, 32, 3\)"),
        (np.zeros((3, 64, 64), np.float32), r"shape \(3, 64, 64\).*channels last"),
        (np.zeros((64, 64, 3), np.int64), r"dtype int64; expected uint8"),
        (np.full((64, 64, 3), 255.0), r"values in \[255, 255\]; expected values in \[0, 1\]"),
        (Image.new("L", (64, 64)), r"mode 'L'; expected mode 'RGB'"),
        (Image.new("RGBA", (64, 64)), r"mode 'RGBA'"),
    ],
)
def test_bad_images_raise_naming_what_is_accepted(bad, message):
    with pytest.raises(ValueError, match=message):
        geneval.evaluate_image(bad, "a photo of a circle")


def test_batch_and_prompt_count_mismatch_raises():
    images = np.full((3, 64, 64, 3), 255, np.uint8)
    with pytest.raises(ValueError, match="3 images but 2 prompts"):
        geneval.evaluate(images, ["a photo of a circle"] * 2)
    with pytest.raises(ValueError, match=r"batch of shape \(64, 64, 3\)"):
        geneval.evaluate(images[0], ["a photo of a circle"])


def test_blank_image_has_no_detections():
    assert geneval.detect(np.full((64, 64, 3), 255, np.uint8)) == []


# ---------------------------------------------------------------- samples on disk and the CLI


@pytest.mark.parametrize("layout", ["folder", "file.npz"])
def test_saved_samples_load_back_in_prompt_order(tmp_path, layout):
    prompts = world.load_prompts("quick")
    idx = [5, 2, 5, 0]
    images = np.stack([world.render_prompt(prompts[i], s) for s, i in enumerate(idx)])
    path = geneval.save_samples(images, idx, tmp_path / layout)
    loaded, loaded_idx, names = geneval.load_samples(path)
    assert loaded_idx.tolist() == [0, 2, 5, 5]
    assert np.array_equal(loaded, images[[3, 1, 0, 2]])
    if layout == "folder":
        assert names == ["00000_00.png", "00002_00.png", "00005_00.png", "00005_01.png"]


def test_loading_rejects_misnamed_files_and_bad_indices(tmp_path):
    Image.new("RGB", (64, 64), "white").save(tmp_path / "sample.png")
    with pytest.raises(ValueError, match=r"\['sample.png'\] do not follow"):
        geneval.load_samples(tmp_path)
    geneval.save_samples(np.full((1, 64, 64, 3), 255, np.uint8), [999], tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"prompt index 999 is outside the prompt set of 120 prompts"):
        geneval.evaluate_samples(tmp_path / "x.npz", "quick")


def test_cli_evaluate_prints_the_table_and_writes_json(tmp_path, capsys):
    prompts = world.load_prompts("quick")
    idx = list(range(0, 120, 10))
    geneval.save_samples([world.render_prompt(prompts[i], i) for i in idx], idx, tmp_path / "samples")
    out = tmp_path / "results.json"
    cli.main(["geneval", "evaluate", str(tmp_path / "samples"), "--prompts", "quick", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "overall" in printed and "100.0%" in printed
    data = json.loads(out.read_text())
    assert data["overall"] == 1.0 and data["prompts"] == "quick" and "provenance" in data
    assert [e["prompt_index"] for e in data["images"]] == idx


def test_benchmark_measures_the_targets_and_writes_json(tmp_path):
    from lab.bench import geneval as bench

    out = tmp_path / "geneval.json"
    bench.main(["--n", "40", "--quick", "--out", str(out)])
    data = json.loads(out.read_text())
    for key in ("clean_accuracy", "perturbed_rejection", "blur_noise_accuracy", "images_per_s"):
        assert data[key] == data[key] and key in data["meets_targets"]  # measured (not NaN) and judged
    assert data["perturbed_truly_false"] == 1.0 and "provenance" in data
    assert set(data["touching"]) == {"0", "1", "1.5", "2", "3"} and "uniform frame" in data["false_pass"]
    assert set(data["stress_meets_targets"]) == set(data["stress_targets"]) and "X cross" in data["unrecognised_shapes"]


# ---------------------------------------------------------------- hardening: instances, non-objects, unknown shapes


def test_touching_pair_is_counted_as_two():
    # two red circles whose boxes touch (gap 0): one ink component, two objects
    image = stress.draw([("circle", "red", 20.0, 32.0, 18.0), ("circle", "red", 38.0, 32.0, 18.0)])
    assert geneval.evaluate_image(image, "a photo of two circles").correct
    blurred = degrade(image, np.random.default_rng(0))
    assert geneval.evaluate_image(blurred, "a photo of two circles").correct


def test_touching_objects_of_two_colours_keep_their_colours():
    image = stress.draw([("square", "blue", 20.0, 30.0, 18.0), ("triangle", "yellow", 39.0, 30.0, 18.0)])
    assert geneval.evaluate_image(image, "a photo of a blue square and a yellow triangle").correct


@pytest.mark.parametrize("gap", [0.0, 1.0, 2.0])
def test_groups_at_small_gaps_are_counted_like_a_person_would(gap):
    rng = np.random.default_rng(3)
    ok = [geneval.evaluate_image(x, p).correct for x, p in stress.touching_cases(gap, 12, rng)]
    assert np.mean(ok) >= 0.9


@pytest.mark.parametrize("kind", stress.JUNK_KINDS)
def test_noise_and_uniform_frames_have_no_objects(kind):
    images = stress.junk_images(kind, 12, np.random.default_rng(0))
    assert all(geneval.detect(x) == [] for x in images)
    assert not geneval.evaluate_image(images[0], "a photo of a square").correct


def test_specks_below_the_smallest_object_are_not_objects():
    speck = stress.draw([("square", "red", 32.0, 32.0, 6.0)])  # 36 px; the smallest object covers ~98
    assert geneval.detect(speck) == []


@pytest.mark.parametrize("name", stress.ODD_SHAPES)
def test_unknown_shape_never_passes_a_prompt_naming_a_class(name):
    for image in stress.odd_shape_cases(name, 4, np.random.default_rng(1)):
        detections = geneval.detect(image)
        assert detections and all(d.shape == geneval.UNRECOGNISED for d in detections)
        for shape in world.SHAPES:
            v = geneval.apply_rules(detections, f"a photo of a {shape}")
            assert not v.correct and "unrecognised shape" in v.reason


def test_unrecognised_shapes_do_not_count_towards_counting():
    image = stress.draw(
        [
            ("circle", "red", 14.0, 14.0, 16.0),
            ("circle", "blue", 48.0, 14.0, 16.0),
            ("square", "green", 30.0, 46.0, 16.0, 30.0),
        ]
    )  # a square rotated 30 deg
    assert geneval.evaluate_image(image, "a photo of two circles").correct
    assert not geneval.evaluate_image(image, "a photo of a square").correct


# ---------------------------------------------------------------- error bars and paired comparisons


def _report(correct_by_prompt: list[list[bool]], task: str = "single_object") -> geneval.Report:
    """A report of len(correct_by_prompt) prompts of one task with the given per-image verdicts."""
    prompt = world.parse_prompt("a photo of a circle")
    prompts, verdicts, idx = [], [], []
    for i, hits in enumerate(correct_by_prompt):
        for c in hits:
            prompts.append(dataclasses.replace(prompt, task=task))
            verdicts.append(geneval.Verdict(c, ""))
            idx.append(i)
    return geneval.Report(prompts, verdicts, prompt_indices=idx)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small = _report([list(rng.random(4) < 0.6) for _ in range(20)])
    large = _report([list(rng.random(4) < 0.6) for _ in range(320)])
    for r in (small, large):
        iv = r.interval()
        assert iv.overall_interval[0] <= iv.overall == r.overall <= iv.overall_interval[1]
    width = [r.interval().overall_interval[1] - r.interval().overall_interval[0] for r in (small, large)]
    assert width[1] < width[0] / 2
    assert r.interval().to_json()["n_prompts"] == 320


def test_bootstrap_interval_is_reproducible_and_shown_in_the_table():
    r = _report([[True, False, True, True]] * 10 + [[False] * 4] * 10)
    assert r.interval() == r.interval()
    assert "95% bootstrap interval" in r.table() and "interval" in r.to_json()


def test_compare_of_identical_reports_is_exactly_zero():
    rng = np.random.default_rng(1)
    r = _report([list(rng.random(4) < 0.5) for _ in range(30)])
    d = geneval.compare(r, r)
    assert d.overall == 0.0 and d.overall_interval == (0.0, 0.0)


def test_compare_pairs_images_and_detects_a_consistent_gain():
    rng = np.random.default_rng(2)
    base = [list(rng.random(4) < 0.4) for _ in range(60)]
    better = [[c or rng.random() < 0.3 for c in hits] for hits in base]
    d = geneval.compare(_report(better), _report(base))
    assert d.overall > 0 and d.overall_interval[0] > 0  # paired: the shared outcomes cancel


def test_compare_refuses_reports_of_different_prompts_or_seeds():
    a = _report([[True, False]] * 3)
    with pytest.raises(ValueError, match="same images"):
        geneval.compare(a, _report([[True]] * 3))
    b = _report([[True, False]] * 3)
    a.seeds, b.seeds = [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 6]
    with pytest.raises(ValueError, match="image 5: seed 5 vs 6"):
        geneval.compare(a, b)


def test_written_report_reads_back_for_a_paired_comparison(tmp_path):
    image = _scene(("circle", "red", 32.0, 32.0, 16.0))
    report = geneval.evaluate([image, image], ["a photo of a circle", "a photo of two circles"])
    report.prompt_indices, report.seeds = [3, 7], [11, 12]
    back = geneval.read_report(geneval.write_report(report, tmp_path / "r.json"))
    assert [v.correct for v in back.verdicts] == [True, False] and back.seeds == [11, 12]
    assert back.verdicts[0].detections[0].to_json() == report.verdicts[0].detections[0].to_json()  # rounded in JSON
    assert geneval.compare(back, report).overall == 0.0


def test_position_diagnosis_separates_missing_objects_from_wrong_relations():
    from lab.experiments.position import position_diagnosis

    right = world.parse_prompt("a photo of a circle left of a square")
    wrong = world.parse_prompt("a photo of a circle right of a square")
    img = world.render_prompt(right, 0)
    blank = np.full_like(img, 255)
    report = geneval.evaluate([img, img, blank], [right, wrong, right])
    diag = position_diagnosis(report)
    left, rightward = diag["relations"]["left of"], diag["relations"]["right of"]
    assert left["images"] == 2 and left["both_present"] == 0.5 and left["holds_given_both"] == 1.0
    assert left["outcomes"] == {"both": 1, "missing both": 1}
    assert rightward["holds_given_both"] == 0.0 and rightward["chance_given_both"] == 0.0
    assert left["chance_given_both"] == 1.0  # the 'right of' image shows a circle left of the square
