"""The app (app.py over lab.demo): API through gradio_client, a real browser, bad input, the load bench.

Every test serves the tiny untrained pipeline and a tiny random judge, so a best-of-4 takes well
under a second; only the bench run and the committed screenshot use the shipped models.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from lab import demo, geneval, world
from lab.provenance import REPO_ROOT

PROMPT = "a photo of two circles"
STEPS = 2  # denoising steps: the tiny model is untrained, so a few steps show the whole flow


def load_app_module():
    spec = importlib.util.spec_from_file_location("app", REPO_ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory):
    from lab.judge_train import build_judge

    path = tmp_path_factory.mktemp("judge") / "judge"
    model, processor = build_judge("tiny")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def prunable_tiny_dir(tmp_path_factory, tiny_pipeline_dir):
    """The tiny pipeline with an importance table beside it, so it prunes on load like L."""
    from lab.pruning import ImportanceTable

    path = tmp_path_factory.mktemp("prunable") / "tiny"
    shutil.copytree(tiny_pipeline_dir, path)
    blocks = json.loads((path / "transformer" / "config.json").read_text())["num_layers"]
    importance = np.linspace(0.1, 0.5, blocks)[:, None]  # (blocks, 1 timestep): the last block matters most
    ImportanceTable(importance, np.array([500.0])).save(path / "importance.json")
    return path


@pytest.fixture(scope="module")
def session(prunable_tiny_dir, tiny_pipeline_dir, tiny_judge_dir):
    return demo.DemoSession(
        demo.DemoConfig(
            models={"deep": str(prunable_tiny_dir), "plain": str(tiny_pipeline_dir)},
            judge=str(tiny_judge_dir),
            steps=STEPS,
        )
    )


@pytest.fixture(scope="module")
def served(session):
    """The app launched on loopback and a gradio_client Client to it."""
    from gradio_client import Client

    page = load_app_module().build_demo(session)
    page.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield page, Client(page.local_url, verbose=False)
    finally:
        page.close()


def call(client, session, prompt=PROMPT, model="plain", depth=2, n=4, judge=None):
    return client.submit(prompt, model, depth, n, STEPS, 4.5, 0, judge or session.judge_label, api_name="/best_of_n")


def test_best_of_4_returns_four_candidates_a_three_match_bracket_and_the_ranked_winner(served, session):
    _, client = served
    job = call(client, session)
    gallery, bracket, winner, winner_text, compute, curve, summary = job.result()
    assert len(job.outputs()) >= 3  # streamed: candidates in batches, then the ranked result
    assert len(gallery) == 4 and len(summary["scores"]) == 4
    assert sum(len(r) for r in summary["bracket"]) == 3
    assert summary["winner"] == summary["ranking"][0] and sorted(summary["ranking"]) == [0, 1, 2, 3]
    assert summary["bracket"][-1][0]["winner"] == summary["winner"]
    assert f"#{summary['winner']} " in gallery[0]["caption"] and demo.WINNER_MARK in gallery[0]["caption"]
    # the gallery is ranked; its PNGs are the candidates, and the verdicts are the evaluator's
    for item, index in zip(gallery, summary["ranking"]):
        image = np.asarray(Image.open(item["image"]).convert("RGB"))
        verdict = geneval.evaluate_image(image, PROMPT)
        assert summary["verdicts"][index] == {"correct": verdict.correct, "reason": verdict.reason}
        shown = float(item["caption"].split("P(yes)=")[1].split()[0])
        assert verdict.reason in item["caption"] and shown == pytest.approx(
            summary["scores"][index]["p_yes"], abs=0.006
        )
    assert np.array_equal(
        np.asarray(Image.open(winner).convert("RGB")), np.asarray(Image.open(gallery[0]["image"]).convert("RGB"))
    )
    assert "Winner: candidate" in winner_text
    assert "model calls (NFE)" in compute and "**4** judge calls" in compute


def test_depth_slider_prunes_the_deep_model_once(served, session):
    _, client = served
    *_, summary = call(client, session, model="deep", depth=1, n=2).result()
    assert summary["blocks"] == 1
    assert session.pipeline("deep", 1) is session.pipeline("deep", 1)
    assert len(session.pipeline("deep", 2).transformer.transformer_blocks) == 2
    assert session.kept_blocks("deep", 1) == [1]  # the more important block of the two


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("", "Type a prompt"),
        ("a photo of two dogs", "Unknown words: 'dogs'"),
        ("circle a photo of", "fits none of the world's forms"),
    ],
)
def test_bad_prompts_show_a_message_and_the_app_keeps_serving(served, session, prompt, message):
    from gradio_client.exceptions import AppError

    _, client = served
    with pytest.raises(AppError, match=message):
        call(client, session, prompt=prompt).result()
    assert len(call(client, session, n=1).result()[0]) == 1


def test_n_out_of_range_is_refused_with_the_accepted_range(served, session):
    from gradio_client.exceptions import AppError

    _, client = served
    with pytest.raises(AppError, match="greater than maximum value 64"):
        call(client, session, n=65).result()
    with pytest.raises(demo.DemoError, match="from 1 to 64"):
        demo.check_count(0, 64)


def test_pruned_depths_beyond_the_cache_bound_are_dropped(prunable_tiny_dir, tiny_judge_dir):
    s = demo.DemoSession(
        demo.DemoConfig(models={"deep": str(prunable_tiny_dir)}, judge=str(tiny_judge_dir), cached_depths=0)
    )
    first = s.pipeline("deep", 1)
    assert s.pipeline("deep", 1) is not first  # pruned again: nothing pruned is kept
    assert s.pipeline("deep", 2) is s.pipeline("deep", None)  # the full model is always kept


def test_a_model_directory_that_fails_to_load_is_a_message(tmp_path, tiny_judge_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    s = demo.DemoSession(demo.DemoConfig(models={"broken": str(broken)}, judge=str(tiny_judge_dir)))
    with pytest.raises(demo.DemoError, match="could not load model broken"):
        next(s.run(PROMPT, "broken", n=1, steps=STEPS))


def test_a_missing_judge_falls_back_to_the_labelled_oracle_with_a_warning(tiny_pipeline_dir, tmp_path):
    s = demo.DemoSession(demo.DemoConfig(models={"plain": str(tiny_pipeline_dir)}, judge=str(tmp_path / "nojudge")))
    assert s.judge_problem().startswith(f"No judge at {tmp_path / 'nojudge'} yet")
    frames = list(s.run(PROMPT, "plain", n=2, steps=STEPS, draw=False))
    assert "Ranking with the oracle (exact evaluator) instead" in frames[0].warnings[0]
    assert frames[-1].summary["judge"] == "oracle" and "judge: oracle" in frames[-1].compute
    assert (
        s.judge_choices[0] == s.judge_label and demo.ORACLE_CHOICE in s.judge_choices
    )  # the oracle is never the default


def test_a_judge_directory_that_fails_to_load_is_a_message(tiny_pipeline_dir, tmp_path):
    s = demo.DemoSession(demo.DemoConfig(models={"plain": str(tiny_pipeline_dir)}, judge=str(tmp_path)))
    assert "did not load" in s.judge_problem() and demo.ORACLE_CHOICE in s.judge_problem()


def test_first_batch_is_small_so_candidates_show_early(session):
    frames = session.run(PROMPT, "plain", n=11, steps=STEPS, draw=False)
    first = next(frames)
    assert len(first.gallery) == session.config.first_batch and first.stage == "generating"
    assert first.bracket is None and first.best_so_far is None
    assert demo.batch_schedule(11, 2, 8) == [[0, 1], list(range(2, 10)), [10]]
    assert demo.batch_schedule(1, 2, 8) == [[0]]


def test_best_so_far_follows_the_judges_pick_and_the_oracle_bound():
    from lab.judge import JudgeScores
    from lab.scaling import BestOfN

    result = BestOfN(
        PROMPT,
        3,
        [0, 1, 2],
        "tournament",
        "t",
        np.zeros((3, 1, 1, 3), np.uint8),
        JudgeScores(np.array([0.9, 0.2, 0.95]), np.array([2.0, -1.0, 3.0]), np.zeros(3)),
    )
    verdicts = [geneval.Verdict(False, "x"), geneval.Verdict(True, "ok"), geneval.Verdict(True, "ok")]
    pick, bound = demo.best_so_far(result, verdicts)
    assert pick.tolist() == [False, False, True] and bound.tolist() == [False, True, True]


def test_prompt_check_names_unknown_words_and_what_the_world_knows():
    with pytest.raises(demo.DemoError) as e:
        demo.check_prompt("a photo of a red dog and a blue cat")
    assert "'dog', 'cat'" in str(e.value) and "circle" in str(e.value)
    assert demo.check_prompt("a photo of a red circle").task == "colors"


def test_examples_cover_every_task_and_random_prompts_parse():
    examples = demo.example_prompts(3)
    assert list(examples) == list(world.TASKS) and all(1 <= len(v) <= 3 for v in examples.values())
    for task, texts in examples.items():
        assert all(world.parse_prompt(t).task == task for t in texts)
    rng = np.random.default_rng(0)
    assert all(demo.check_prompt(demo.random_prompt(rng)) for _ in range(5))


def test_importance_tab_highlights_the_kept_blocks(session):
    fig = demo.importance_figure(session, "deep", 1)
    assert any("kept at depth 1" in t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
    assert demo.importance_figure(session, "plain", None) is None
    assert demo.frontier_note(REPO_ROOT / "no" / "frontier.png").startswith("No frontier figure yet")


def test_browser_types_a_prompt_sets_n_and_sees_the_winner(served, tmp_path):
    from lab import browser

    problem = browser.browser_problem()
    if problem and os.environ.get(browser.REQUIRE_ENV):
        pytest.fail(f"{browser.REQUIRE_ENV} is set but there is no browser: {problem}")
    if problem:
        pytest.skip(f"no browser for the UI test: {problem}")
    page, _ = served
    run = browser.run_in_browser(page.local_url, PROMPT, n=3, screenshot=tmp_path / "app.png")
    assert "Winner: candidate" in run.winner_text
    assert run.first_candidate_s <= run.winner_s
    with Image.open(run.screenshot) as shot:
        assert shot.format == "PNG" and shot.size[0] >= browser.VIEWPORT["width"]


def test_bench_app_quick_serves_concurrent_clients_without_errors(
    tmp_path, tiny_pipeline_dir, prunable_tiny_dir, tiny_judge_dir
):
    from lab.bench import app as bench_app

    out = tmp_path / "app.json"
    bench_app.main(
        [
            "--quick",
            "--models",
            f"tiny={tiny_pipeline_dir}",
            f"deep={prunable_tiny_dir}",
            "--judge",
            str(tiny_judge_dir),
            "--out",
            str(out),
        ]
    )
    report = json.loads(out.read_text())
    load = report["load"]
    assert load["errors"] == 0 and load["completed"] == load["clients"] >= 2
    assert load["latency_s"]["p50"] <= load["latency_s"]["p95"]
    assert load["max_queue_seen"] <= load["queue_max_size"]
    assert report["server"]["peak_rss_mb"] > 0
    assert report["best_of_n"]["runs"][0]["candidates"] == bench_app.QUICK["best_of"]
    assert report["depth"]["block_ratio"] == 0.5 and report["depth"]["time_ratio"] > 0


def test_candidate_files_are_written_once_per_run():
    files = demo.CandidateFiles()
    image = world.render_prompt(PROMPT, 0)
    first = files.path(3, image)
    mtime = os.stat(first).st_mtime_ns
    assert files.path(3, np.zeros_like(image)) == first and os.stat(first).st_mtime_ns == mtime  # never rewritten
    assert np.array_equal(np.asarray(Image.open(first).convert("RGB")), image)
