"""The block-similarity explorer, driven without a browser: set widget values, read the outputs."""

from __future__ import annotations

import numpy as np
import pytest

from lab import pruning
from lab.explorer import BlockExplorer, block_explorer

PROMPTS = ["a photo of a red circle", "a photo of two blue squares"]
PNG = b"\x89PNG"


def png(image_widget) -> bytes:
    return bytes(image_widget.value)  # ipywidgets holds image bytes as a memoryview


@pytest.fixture
def explorer(tiny_pipeline):
    return BlockExplorer(tiny_pipeline, PROMPTS, timesteps=3)


def test_explorer_opens_on_the_first_prompt_with_a_curve_an_estimate_and_the_final_image(explorer):
    assert explorer.prompt == PROMPTS[0]
    for image in (explorer.curve, explorer.image, explorer.final):
        assert png(image).startswith(PNG)
    assert PROMPTS[0] in explorer.status.value and "step 1/3" in explorer.status.value
    assert explorer.step.max == 2 and explorer.similarity_at(0).shape == (2,)


def test_sliding_the_timestep_redraws_the_curve_and_the_estimate_but_not_the_final_image(explorer):
    curve, image, final = png(explorer.curve), png(explorer.image), png(explorer.final)
    explorer.step.value = 2
    assert png(explorer.curve) != curve and png(explorer.image) != image and png(explorer.final) == final
    assert "step 3/3" in explorer.status.value
    trace = explorer.trace(PROMPTS[0])
    assert np.array_equal(explorer.similarity_at(2), trace.similarity[2, :, 1, 0])


def test_picking_another_prompt_shows_its_own_run(explorer):
    before = explorer.similarity_at(0).copy()
    explorer.prompt_menu.value = PROMPTS[1]
    assert explorer.prompt == PROMPTS[1] and PROMPTS[1] in explorer.status.value
    assert not np.allclose(before, explorer.similarity_at(0))


def test_typing_a_prompt_computes_it_once_and_warns_about_unknown_words(explorer, monkeypatch):
    import lab.explorer

    runs = []
    real = lab.explorer.trace_blocks
    monkeypatch.setattr(lab.explorer, "trace_blocks", lambda *a, **k: runs.append(a[1]) or real(*a, **k))
    explorer.prompt_text.value = "a photo of a purple zebra"
    assert explorer.prompt == "a photo of a purple zebra" and "zebra" in explorer.status.value
    explorer.prompt_menu.value = PROMPTS[1]
    explorer.prompt_menu.value = PROMPTS[0]  # cached from the start: no new sampling run
    explorer.prompt_text.value = "  a photo of a purple zebra "
    assert runs == [["a photo of a purple zebra"], [PROMPTS[1]]]


def test_an_empty_typed_prompt_is_reported_and_keeps_the_current_one(explorer):
    curve = png(explorer.curve)
    explorer.prompt_text.value = "   "
    assert explorer.prompt == PROMPTS[0] and png(explorer.curve) == curve and "type a prompt" in explorer.status.value


def test_explorer_draws_the_calibration_mean_and_rejects_a_table_of_another_model(tiny_pipeline):
    table = pruning.ImportanceTable(np.array([[0.1, 0.2], [0.3, 0.4]]), [999.0, 499.0])
    ex = block_explorer(tiny_pipeline, PROMPTS[:1], timesteps=2, reference=table)
    assert png(ex.curve).startswith(PNG) and "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()
    wrong = pruning.ImportanceTable(np.zeros((5, 2)), [999.0, 499.0])
    with pytest.raises(ValueError, match="5 blocks but the model has 2"):
        BlockExplorer(tiny_pipeline, PROMPTS, timesteps=2, reference=wrong)
    with pytest.raises(ValueError, match="at least one prompt"):
        BlockExplorer(tiny_pipeline, [], timesteps=2)
