"""The position mechanism measures (lab.experiments.position): what the encoder passes on and
whether a layout moves with the relation."""

import numpy as np
import pytest
import torch

from lab.experiments import position

PAIRS = (("circle", "square"), ("square", "triangle"), ("cross", "circle"))


def relation_texts(first: str, second: str) -> list[str]:
    return [position.relation_prompts(p, r) for p in PAIRS for r in (first, second)]


def test_an_encoder_that_merges_opposite_relations_scores_cosine_one_and_a_fresh_one_does_not(tiny_pipeline):
    tok, enc = tiny_pipeline.tokenizer, tiny_pipeline.text_encoder
    fresh = position.relation_token_similarity(tok, enc, PAIRS)
    assert set(fresh) == {"left/right", "above/below"}
    assert all(v["relation_token"] < 0.999 for v in fresh.values())
    merged = {w: tok.convert_tokens_to_ids(w) for w in ("left", "right", "above", "below")}
    table = enc.get_input_embeddings().weight
    original = table.detach().clone()
    with torch.no_grad():  # "right" reads as "left", "below" as "above": nothing tells them apart
        table[merged["right"]] = table[merged["left"]]
        table[merged["below"]] = table[merged["above"]]
    try:
        same = position.relation_token_similarity(tok, enc, PAIRS)
    finally:
        with torch.no_grad():
            table.copy_(original)
    for axis in same.values():
        assert axis["relation_token"] == pytest.approx(1.0, abs=1e-5)
        assert axis["last_token"] == pytest.approx(1.0, abs=1e-5)


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


def test_encoder_pilot_measures_both_arms_and_only_the_joint_arm_moves_its_encoder(tiny_vae_dir, tmp_path):
    import yaml

    config = tmp_path / "pilot.yaml"
    fields = dict(size="tiny", vae=str(tiny_vae_dir), steps=2, batch_size=2, warmup_steps=1, checkpoint_every=1)
    config.write_text(yaml.safe_dump({**fields, "lr": 0.05, "task_weights": [0, 0, 0, 0, 1, 0]}))
    results = position.encoder_pilot(str(config), str(tmp_path / "pilot"), every=1, scenes=4, seeds=1)
    assert set(results) == set(position.PILOT_ARMS)
    cosine = {arm: [m["encoder"]["left/right"]["relation_token"] for _, m in pts] for arm, pts in results.items()}
    assert [s for s, _ in results["frozen encoder"]] == [1, 2] == [s for s, _ in results["joint encoder"]]
    assert cosine["frozen encoder"][0] == cosine["frozen encoder"][1]  # the same weights at every step
    assert cosine["joint encoder"][0] != cosine["joint encoder"][1]
    again = position.encoder_pilot(
        str(config), str(tmp_path / "pilot"), every=1, scenes=4, seeds=1
    )  # resumes: no new steps
    assert again == {arm: [tuple(p) for p in pts] for arm, pts in results.items()}
    fig = position.pilot_figure(results, stamp={"test": 1})
    assert len(fig.axes) == 5
