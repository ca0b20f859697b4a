"""Figures: the image grid with verdict marks, the provenance stamp, and the `lab world render` grid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lab import cli, geneval, plots, world


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_image_grid_renders_to_png_with_verdict_marks(tmp_path):
    prompts = world.load_prompts("quick")[:5]
    images = np.stack([world.render_prompt(p, i) for i, p in enumerate(prompts)])
    verdicts = [geneval.evaluate_image(x, p) for x, p in zip(images, prompts)]
    verdicts[1] = geneval.Verdict(False, "made wrong for the test")
    fig = plots.image_grid(
        images,
        captions=[p.text for p in prompts],
        verdicts=verdicts,
        ncols=3,
        title="quick",
        stamp={"seed": 0, "commit": "abc1234"},
    )
    path = tmp_path / "grid.png"
    fig.savefig(path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300
    texts = _texts(fig)
    assert texts.count(plots.MARKS[True]) == 4 and texts.count(plots.MARKS[False]) == 1
    assert prompts[0].text in texts and "quick" in texts


def test_image_grid_takes_booleans_floats_and_no_verdicts():
    images = [np.ones((64, 64, 3)), np.zeros((64, 64, 3), np.uint8)]
    fig = plots.image_grid(images, verdicts=[True, None])
    assert _texts(fig).count(plots.MARKS[True]) == 1 and plots.MARKS[False] not in _texts(fig)


def test_image_grid_rejects_mismatched_captions():
    with pytest.raises(ValueError, match="1 captions for 2 images"):
        plots.image_grid([np.ones((8, 8, 3))] * 2, captions=["one"])


def test_stamp_adds_the_commit_when_missing(monkeypatch):
    monkeypatch.setattr("lab.provenance.git_commit", lambda short=True: "feedbee")
    fig = plots.image_grid([np.ones((8, 8, 3))], stamp={"checkpoint": "S", "steps": 20})
    # a one-image grid is narrow: the footer wraps, with every entry kept
    assert any(" ".join(t.split()) == "checkpoint=S \u00b7 steps=20 \u00b7 commit=feedbee" for t in _texts(fig))


def test_cli_world_render_saves_a_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    cli.main(["world", "render", "--prompt", "a photo of two circles", "--n", "3", "--seed", "5", "-o", str(out)])
    assert out.is_file() and "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["world", "render", "--prompt", "a photo of a hexagon", "-o", str(out)])
    assert exit_info.value.code == 2 and "unknown words ['hexagon']" in capsys.readouterr().err


def test_quick_mode_figures_are_marked_smoke_test_not_a_result():
    from matplotlib.figure import Figure

    from lab.provenance import SMOKE_TEST

    def texts(mode):
        fig = plots.stamp_figure(Figure(), {"mode": mode, "commit": "abc"})
        return [t.get_text() for t in fig.texts]

    assert SMOKE_TEST == "smoke test \u2014 not a result"
    assert SMOKE_TEST in texts("quick") and SMOKE_TEST not in " ".join(texts("full"))


def _best_of(n: int):
    from lab.judge import JudgeScores
    from lab.scaling import BestOfN, rank

    rng = np.random.default_rng(0)
    yes, no = rng.normal(size=n), rng.normal(size=n)
    scores = JudgeScores(1 / (1 + np.exp(no - yes)), yes, no)
    images = np.stack([world.render_prompt("a photo of a red circle", i) for i in range(n)])
    result = BestOfN("a photo of a red circle", n, list(range(n)), "tournament", "test", images, scores)
    result.ranking, result.bracket = rank(scores)
    return result


def test_tournament_bracket_draws_every_candidate_and_names_the_winner():
    result = _best_of(5)  # 3 rounds, with byes
    fig = plots.tournament_bracket(result, images=result.images, verdicts=[True, False, True, False, True])
    texts = _texts(fig)
    assert f"tournament: round 3 of 3, winner #{result.winner}" in texts
    assert all(any(t.startswith(f"#{i}\n") for t in texts) for i in range(5))
    partial = plots.tournament_bracket(result, rounds=1)
    assert "tournament: round 1 of 3" in _texts(partial)
    assert partial.get_size_inches().tolist() == fig.get_size_inches().tolist()  # drawing round by round does not jump


def test_tournament_bracket_rejects_mismatched_verdicts():
    with pytest.raises(ValueError, match="2 verdicts for 5 candidates"):
        plots.tournament_bracket(_best_of(5), verdicts=[True, False])


def test_best_so_far_curve_and_importance_highlight_render(tmp_path):
    from lab.pruning import ImportanceTable

    plots.best_so_far_curve([False, True, True], [True, True, True]).savefig(tmp_path / "curve.png")
    table = ImportanceTable(np.random.default_rng(0).random((6, 3)), np.array([900.0, 500.0, 100.0]))
    fig = plots.block_importance_lines(table, highlight=[0, 4], highlight_label="kept at depth 2")
    assert "kept at depth 2 (2 of 6)" in _texts(fig)


def test_scaling_figures_are_drawn_from_the_experiment_metrics():
    from lab.experiments.scaling import figures

    curve = [{"n": n, "overall": 0.4 + 0.05 * n, "interval": [0.3, 0.6], "tasks": {}} for n in (1, 2)]
    rel = {
        "overall": {"balanced_accuracy": 0.7, "auc": 0.8},
        "tasks": {"counting": {"balanced_accuracy": 0.6, "auc": 0.7}},
        "calibration": [{"p_mean": 0.2, "yes_rate": 0.3, "n": 4}],
    }
    metrics = {
        "models": {"S": {"blocks": 8, "curves": {"judge": curve, "oracle": curve, "random": curve}}},
        "steps_vs_candidates": {
            "model": "S",
            "steps": [{"steps": 5, "nfe": 10, "overall": 0.3}],
            "candidates": [{"n": 1, "nfe": 40, "overall": 0.4}],
        },
        "frontier": [{"model": "S", "n": 1, "blocks": 8, "seconds": 0.1, "overall": 0.4, "pareto": True}],
        "reliability": {"held_out": rel},
    }
    figs = figures(metrics, stamp={"mode": "test"})
    assert set(figs) == {"geneval_vs_n", "steps_vs_candidates", "frontier", "judge_reliability"}
    assert all(f is not None and f.axes for f in figs.values())
