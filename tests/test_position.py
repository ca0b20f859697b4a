"""The position mechanism measures (lab.experiments.position): what the encoder passes on and
whether a layout moves with the relation."""

import contextlib
import json

import numpy as np
import pytest
import torch

from lab.experiments import position

PAIRS = (("circle", "square"), ("square", "triangle"), ("cross", "circle"))


def relation_texts(first: str, second: str) -> list[str]:
    return [position.relation_prompts(p, r) for p in PAIRS for r in (first, second)]


def test_layout_agreement_follows_the_world_and_turns_negative_when_relations_are_swapped():
    texts = relation_texts("left of", "right of")
    followed = np.stack([position.world_layout(t, 128, seed=10_000) for t in texts])  # other scenes
    swapped = followed.reshape(len(PAIRS), 2, *followed.shape[1:])[:, ::-1].reshape(followed.shape)
    ignored = np.repeat(followed[0::2], 2, axis=0)  # the same layout for a relation and its opposite
    agree = position.layout_agreement(followed, texts, scenes=128)
    assert agree["model"] > 0.5 and agree["world_split_half"] > 0.5
    assert position.layout_agreement(swapped, texts, scenes=128)["model"] < -0.5
    assert position.layout_agreement(ignored, texts, scenes=128)["model"] == 0.0


def test_relation_sensitivity_reads_layout_and_placement_from_the_same_samples(tiny_pipeline):
    out = position.relation_sensitivity(tiny_pipeline, PAIRS[:1], seeds=2, scenes=8)
    assert set(out) == {"left/right", "above/below", "placement"}
    assert all(-1 <= out[a]["model"] <= 1 and out[a]["world_split_half"] > 0 for a in ("left/right", "above/below"))
    assert out["placement"]["images"] == 2 * 4  # 2 seeds x the 4 relations of one shape pair
    assert 0 <= out["placement"]["both_present"] <= 1


@contextlib.contextmanager
def words_read_alike(pipe, pairs: dict[str, str]):
    """The text encoder reads each key word as its value word (a copied embedding row)."""
    tok, table = pipe.tokenizer, pipe.text_encoder.get_input_embeddings().weight
    original = table.detach().clone()
    with torch.no_grad():
        for word, alike in pairs.items():
            table[tok.convert_tokens_to_ids(word)] = table[tok.convert_tokens_to_ids(alike)]
    try:
        yield
    finally:
        with torch.no_grad():
            table.copy_(original)


def test_relation_preference_is_zero_when_the_encoder_reads_opposite_relations_alike(tiny_pipeline):
    def prefers(**kw):
        return position.relation_preference(tiny_pipeline, PAIRS[:2], scenes=2, sigmas=(0.5, 0.9), **kw)

    fresh = prefers()
    assert set(fresh["by_sigma"]) == {"0.5", "0.9"}
    assert all(0 <= fresh[k] <= 1 for k in position.WRONG_CAPTIONS)
    with words_read_alike(tiny_pipeline, {"right": "left", "below": "above"}):  # no order on an axis
        merged = prefers()
    assert merged["relation"] == 0.0  # equal losses are never lower
    assert merged["shape"] > 0  # the wrong shape still reads differently


def test_encoder_pilot_trains_each_arm_as_configured_and_resumes_without_new_steps(
    tiny_vae_dir, tiny_text_encoder_dir, tmp_path, monkeypatch
):
    import yaml

    from lab.model import load_pipeline

    arms = {
        k: v | ({"text_encoder": str(tiny_text_encoder_dir)} if "text_encoder" in v else {})
        for k, v in position.PILOT_ARMS.items()
    }  # the shipped encoder is wider than the tiny transformer
    monkeypatch.setattr(position, "PILOT_ARMS", arms)

    config = tmp_path / "pilot.yaml"
    fields = dict(size="tiny", vae=str(tiny_vae_dir), steps=2, batch_size=2, warmup_steps=1, checkpoint_every=1)
    config.write_text(yaml.safe_dump({**fields, "lr": 0.05, "task_weights": [0, 0, 0, 0, 1, 0]}))
    out = tmp_path / "pilot"
    results = position.encoder_pilot(str(config), str(out), every=1, scenes=4, seeds=1)
    assert set(results) == set(position.PILOT_ARMS) == set(position.pilot_results(str(out)))
    cosine = {arm: [m["encoder"]["left/right"]["relation_token"] for _, m in pts] for arm, pts in results.items()}
    assert all([s for s, _ in pts] == [1, 2] for pts in results.values())
    assert cosine["frozen encoder"][0] == cosine["frozen encoder"][1]  # the same weights at every step
    assert cosine["joint encoder"][0] != cosine["joint encoder"][1]
    for arm, overrides in position.PILOT_ARMS.items():
        transformer = load_pipeline(out / position._arm_dir(arm) / "pipeline").transformer
        assert (transformer.config.interpolation_scale is not None) == (overrides.get("position_embedding") == "sincos")
    one = ("frozen encoder",)
    again = position.encoder_pilot(str(config), str(out), every=1, arms=one, scenes=4, seeds=1)  # no new steps
    assert again == {"frozen encoder": results["frozen encoder"]}
    with pytest.raises(ValueError, match="unknown pilot arm"):
        position.encoder_pilot(str(config), str(out), arms=("frozen",))
    fig = position.pilot_figure(results, stamp={"test": 1})
    assert sum(ax.get_visible() for ax in fig.axes) == len(position.PILOT_PANELS)
    report = tmp_path / "report"  # the report's README shows each arm's last point
    report.mkdir()
    (report / "diagnosis.json").write_text(json.dumps({"models": {}, "mechanism": {}}))
    (report / "pilot.json").write_text(json.dumps({"config": "pilot.yaml", "measure_every": 1, "arms": results}))
    position.write_report(report)
    text = (report / "README.md").read_text()
    assert all(f"| {arm}, step 2 |" in text for arm in position.PILOT_ARMS)


def test_the_pilot_report_names_the_arms_whose_axis_reading_started_late():
    with_axis = {"preference": {"relation": 0.5, "axis": 0.5}}
    without = {"preference": {"relation": 0.5}}
    arms = {"old": [(250, without), (500, with_axis)], "new": [(250, with_axis), (500, with_axis)]}
    assert (
        position._first_axis_step(arms) == "; the axis preference was added to the measures later (old: from step 500)"
    )
    assert position._first_axis_step({"new": arms["new"]}) == ""
