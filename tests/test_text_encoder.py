"""The lab's pretrained text encoder: what it is taught to state about a caption, and its use, frozen, in training."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from lab import text_encoder, world
from lab.text_encoder import caption_targets, load_text_encoder, mentions, sample_captions


def test_position_targets_put_the_second_named_object_on_the_opposite_side_of_the_first():
    p = world.make_prompt("position", ("circle", "square"), relation="left of")
    assert [r.cls for r in mentions(p)] == ["circle", "square"]  # text order, not GenEval's storage order
    positions, objects, scene = caption_targets(p, p.text)  # "a photo of a circle left of a square"
    assert positions == [5, 9]  # after BOS
    assert objects["object_shape"] == [world.SHAPES.index("circle"), world.SHAPES.index("square")]
    assert objects["object_relation"] == [0, 1 + world.RELATIONS.index("right of")]
    bits = scene["scene_relations"].reshape(len(world.SHAPE_PAIRS), len(world.RELATIONS))
    assert bits[world.SHAPE_PAIRS.index(("circle", "square")), world.RELATIONS.index("left of")] == 1
    assert bits[world.SHAPE_PAIRS.index(("square", "circle")), world.RELATIONS.index("right of")] == 1
    assert bits.sum() == 2
    assert all(world.OPPOSITE_RELATION[world.OPPOSITE_RELATION[r]] == r for r in world.RELATIONS)


def test_colour_and_count_targets_bind_to_their_own_shape_word_with_or_without_the_photo_prefix():
    p = world.make_prompt("color_attr", ("cross", "triangle"), ("red", "blue"))
    positions, objects, scene = caption_targets(p, "a red cross and a blue triangle")
    assert positions == [3, 7]
    colors = list(world.COLORS)
    assert objects["object_color"] == [1 + colors.index("red"), 1 + colors.index("blue")]
    assert scene["scene_color"][world.SHAPES.index("triangle")] == 1 + colors.index("blue")
    assert scene["scene_count"].tolist() == [int(s in ("cross", "triangle")) for s in world.SHAPES]
    c = world.make_prompt("counting", ("circle",), count=3)
    _, objects, scene = caption_targets(c, c.text)
    assert objects["object_count"] == [2] and scene["scene_count"][world.SHAPES.index("circle")] == 3
    with pytest.raises(ValueError, match="names 1 shapes but its prompt has 2 objects"):
        caption_targets(p, "a red cross")
    texts = [t for _, t in sample_captions(200, np.random.default_rng(0), bare_fraction=0.5)]
    bare = sum(not t.startswith(world.PHOTO_PREFIX) for t in texts)
    assert 60 < bare < 140 and not any(set(q) & world.NOVEL_PAIRS for q in _pairs(texts))


def _pairs(texts):
    for t in texts:
        w = t.split()
        yield {(a, b) for a, b in zip(w, w[1:]) if a in world.COLORS and b in world.SHAPES}


def test_pretrained_encoder_loads_with_plain_transformers_and_is_frozen(tiny_text_encoder_dir):
    from transformers import AutoModel, AutoTokenizer

    tokenizer, encoder = load_text_encoder(tiny_text_encoder_dir)
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    plain = AutoModel.from_pretrained(tiny_text_encoder_dir)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), encoder.state_dict().values()))
    assert (
        AutoTokenizer.from_pretrained(tiny_text_encoder_dir)("a red circle").input_ids
        == tokenizer("a red circle").input_ids
    )
    assert "Read-out accuracy" in (tiny_text_encoder_dir / "README.md").read_text()
    with pytest.raises(ValueError, match="is not a text encoder directory"):
        load_text_encoder(tiny_text_encoder_dir.parent)


def test_a_fresh_or_continued_model_trains_on_the_pretrained_encoder_unchanged(
    tiny_text_encoder_dir, tiny_vae_dir, tiny_pipeline_dir, tmp_path
):
    from lab.model import load_pipeline
    from lab.train import TrainConfig, train

    cfg = TrainConfig(
        size="tiny",
        vae=str(tiny_vae_dir),
        text_encoder=str(tiny_text_encoder_dir),
        train_text_encoder=False,
        steps=2,
        batch_size=2,
        warmup_steps=1,
        checkpoint_every=1,
    )
    train(cfg, tmp_path / "run", progress=False)
    _, pretrained = load_text_encoder(tiny_text_encoder_dir)
    shipped = load_pipeline(tmp_path / "run" / "pipeline").text_encoder
    assert all(torch.equal(a, b) for a, b in zip(pretrained.state_dict().values(), shipped.state_dict().values()))
    # continued (init_from): the pipeline's own encoder is replaced, and the transformer starts as it was
    again = replace(cfg, size="S", vae="", init_from=str(tiny_pipeline_dir))
    train(again, tmp_path / "again", progress=False)
    swapped = load_pipeline(tmp_path / "again" / "pipeline").text_encoder
    assert all(torch.equal(a, b) for a, b in zip(pretrained.state_dict().values(), swapped.state_dict().values()))
    with pytest.raises(ValueError, match="has hidden size 16, but .* reads captions of width 64"):
        train(replace(again, init_from="checkpoints/S"), tmp_path / "wide", progress=False)


RELATION_PAIRS = (("circle", "square"), ("square", "triangle"), ("cross", "circle"))


def test_an_encoder_that_merges_opposite_relations_scores_cosine_one_and_a_fresh_one_does_not(tiny_pipeline):
    tok, enc = tiny_pipeline.tokenizer, tiny_pipeline.text_encoder
    fresh = text_encoder.relation_token_similarity(tok, enc, RELATION_PAIRS)
    assert set(fresh) == {"left/right", "above/below"}
    assert all(v["relation_token"] < 0.999 for v in fresh.values())
    merged = {w: tok.convert_tokens_to_ids(w) for w in ("left", "right", "above", "below")}
    table = enc.get_input_embeddings().weight
    original = table.detach().clone()
    with torch.no_grad():  # "right" reads as "left", "below" as "above": nothing tells them apart
        table[merged["right"]] = table[merged["left"]]
        table[merged["below"]] = table[merged["above"]]
    try:
        same = text_encoder.relation_token_similarity(tok, enc, RELATION_PAIRS)
    finally:
        with torch.no_grad():
            table.copy_(original)
    for axis in same.values():
        assert axis["relation_token"] == pytest.approx(1.0, abs=1e-5)
        assert axis["last_token"] == pytest.approx(1.0, abs=1e-5)
