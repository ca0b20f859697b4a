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
    fig = plots.image_grid(images, captions=[p.text for p in prompts], verdicts=verdicts, ncols=3, title="quick",
                           stamp={"seed": 0, "commit": "abc1234"})
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
