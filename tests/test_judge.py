"""The judge interface: any image-text-to-text model answers yes/no; the oracle is the evaluator;
reliability against the evaluator; the lab's judge trains, saves and loads without lab code."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from lab import geneval, world
from lab.judge import JudgeScores, OracleJudge, VLMJudge, answer_token_ids, load_judge, reliability, roc_auc
from lab.judge_data import confusable_prompts, judge_dataset, label_pairs, miscounted_renders
from lab.judge_train import JudgeTrainConfig, build_judge, build_tokenizer, quick_config, train_judge

PROMPTS = ["a photo of a red circle", "a photo of two squares", "a photo of a triangle left of a circle"]


@pytest.fixture(scope="module")
def renders():
    return np.stack([world.render_prompt(p, i) for i, p in enumerate(PROMPTS)])


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("llava")
    model, processor = build_judge("tiny")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def paligemma_dir(tmp_path_factory):
    """A tiny random PaliGemma (SigLIP + Gemma, no chat template): a second VLM family."""
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
        SiglipVisionConfig,
    )

    tok = build_tokenizer()
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=64, patch_size=16
    )
    text = GemmaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    config = PaliGemmaConfig(
        vision_config=vision,
        text_config=text,
        projection_dim=32,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    image_processor = SiglipImageProcessorPil(size={"height": 64, "width": 64})
    image_processor.image_seq_length = (64 // 16) ** 2
    path = tmp_path_factory.mktemp("paligemma")
    PaliGemmaForConditionalGeneration(config).save_pretrained(path)
    PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(path)
    return path


@pytest.mark.parametrize("family", ["llava_dir", "paligemma_dir"])
def test_vlm_judge_scores_models_of_two_families(family, request, renders):
    judge = load_judge(request.getfixturevalue(family))
    scores = judge.score(renders, PROMPTS)
    assert len(scores) == 3 and np.all((scores.p_yes > 0) & (scores.p_yes < 1))
    expected = 1 / (1 + np.exp(-(scores.yes_logit - scores.no_logit)))
    np.testing.assert_allclose(scores.p_yes, expected, rtol=1e-5)
    # each image alone gives the same answer as in the batch (left padding keeps the last position real;
    # the shorter prompts are the padded ones)
    for i in range(3):
        alone = judge.score(renders[i : i + 1], PROMPTS[i : i + 1])
        np.testing.assert_allclose(alone.yes_logit, scores.yes_logit[i : i + 1], atol=1e-5)
        np.testing.assert_allclose(alone.no_logit, scores.no_logit[i : i + 1], atol=1e-5)
    assert len(judge.score(renders[:0], [])) == 0  # no images: no scores, not an error


def test_judge_answer_is_the_pooled_logit_of_every_single_token_spelling(llava_dir):
    judge = load_judge(llava_dir)
    tok = judge.processor.tokenizer
    assert judge.yes_ids == [tok.convert_tokens_to_ids("yes")]  # "Yes", " yes" ... lower-case to one token
    logits = torch.zeros(1, len(tok))
    logits[0, judge.yes_ids[0]] = 2.0
    yes, no = judge.answer_logits(logits)
    assert float(yes) == pytest.approx(2.0) and float(no) == pytest.approx(0.0)


def test_tokenizer_without_a_single_yes_token_is_refused():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0, "no": 1}, unk_token="[UNK]")), unk_token="[UNK]"
    )
    with pytest.raises(ValueError, match="single token"):
        answer_token_ids(tok, ("yes", " Yes"))


def test_judge_directory_that_is_missing_or_not_a_vlm_is_refused(tmp_path, tiny_pipeline_dir):
    with pytest.raises(ValueError, match="does not exist"):
        load_judge(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="not an image-text-to-text"):
        load_judge(tiny_pipeline_dir / "text_encoder")  # a Gemma-2 text model


def test_judge_refuses_empty_prompts_and_mismatched_lengths(renders):
    judge = OracleJudge()
    with pytest.raises(ValueError, match="empty"):
        judge.score(renders[:1], [" "])
    with pytest.raises(ValueError, match="one prompt per image"):
        judge.score(renders, PROMPTS[:2])


def test_oracle_judge_is_the_evaluator(renders):
    wrong = ["a photo of a blue circle", "a photo of three squares", "a photo of a triangle right of a circle"]
    scores = OracleJudge().score(np.concatenate([renders, renders]), PROMPTS + wrong)
    expected = [
        geneval.evaluate_image(x, p).correct for x, p in zip(np.concatenate([renders, renders]), PROMPTS + wrong)
    ]
    assert scores.says_yes.tolist() == expected == [True] * 3 + [False] * 3


def test_reliability_of_a_perfect_and_an_inverted_judge():
    labels = np.array([True, False, True, False, True])
    tasks = ["counting"] * 3 + ["position"] * 2
    perfect = JudgeScores(labels.astype(float), labels.astype(float), 1 - labels.astype(float))
    r = reliability(perfect, labels, tasks)
    assert r["overall"]["balanced_accuracy"] == r["overall"]["auc"] == 1.0
    assert set(r["tasks"]) == {"counting", "position"}
    inverted = JudgeScores(1 - labels.astype(float), 1 - labels.astype(float), labels.astype(float))
    assert reliability(inverted, labels, tasks)["overall"]["balanced_accuracy"] == 0.0
    assert roc_auc(np.array([0.1, 0.1]), np.array([True, False])) == 0.5  # ties count half


def test_confusable_prompts_parse_and_differ_from_the_prompt():
    rng = np.random.default_rng(0)
    for task in world.TASKS:
        for p in (
            world.enumerate_prompts(task)[:20]
            if task != "color_attr"
            else [world.make_prompt(task, ("circle", "square"), ("red", "blue"))]
        ):
            others = confusable_prompts(p, rng)
            assert others and all(o.text != p.text for o in others)
            assert all(world.parse_prompt(o.text).text == o.text for o in others)


def test_judge_pairs_are_labelled_by_the_evaluator(renders):
    pairs = label_pairs(renders, PROMPTS, "render", np.random.default_rng(0), negatives_per_image=2)
    assert len(pairs) == 9 and pairs.labels[[0, 3, 6]].all()  # each image's own prompt holds on a clean render
    for i in range(len(pairs)):
        assert pairs.labels[i] == geneval.evaluate_image(pairs.images_of(i), pairs.prompts[i]).correct


def test_miscounted_renders_hold_the_asked_count_plus_their_offset_and_join_the_training_pairs():
    images, prompts, offsets = miscounted_renders(12, seed=0, offsets=(-1, 0, 1))
    assert images.shape == (12, 64, 64, 3) and offsets.tolist() == [-1, 0, 1] * 4
    for image, prompt, offset in zip(images, prompts, offsets):
        assert world.parse_prompt(prompt).task == "counting"
        assert geneval.count_error(geneval.evaluate_image(image, prompt), prompt) == offset
    plain = quick_config(JudgeTrainConfig())
    with_them = judge_dataset(replace(plain, miscounted_renders=10), progress=False)["train"]
    without = judge_dataset(plain, progress=False)["train"]
    added = np.arange(len(without), len(with_them))
    assert len(with_them.images) == len(without.images) + 10 and len(added) > 10
    _, asked, _ = miscounted_renders(10, seed=plain.seed + 1)
    own = [i for i in added if with_them.prompts[i] == asked[with_them.image_index[i] - len(without.images)]]
    assert len(own) == 10 and not with_them.labels[own].any()  # one object more or fewer: the evaluator says no
    assert with_them.labels[added].any()  # the count they show, among the confusable prompts, holds


def test_count_probe_separates_right_counts_for_the_oracle():
    from lab.bench.judge import count_probe

    probe = count_probe(OracleJudge(), n=30, seed=0)
    by_offset = {r["offset"]: r for r in probe["offsets"]}
    assert by_offset[0]["says_yes"] > 0.9 and by_offset[1]["says_yes"] == by_offset[-1]["says_yes"] == 0.0
    assert probe["right_over_one_more"] > 0.9 and probe["right_over_one_fewer"] > 0.9


def test_lab_judge_trains_saves_and_loads_with_plain_transformers(tmp_path):
    out = tmp_path / "judge"
    metrics = train_judge(quick_config(JudgeTrainConfig()), out, progress=False)
    assert 0 <= metrics["overall"]["balanced_accuracy"] <= 1
    assert (out / "train_config.yaml").is_file() and (out / "train_log.jsonl").is_file()
    card = (out / "README.md").read_text()  # the card reproduces from the config that trained it
    assert "--config train_config.yaml" in card and "yes and no weighing half each" in card
    code = f"""
import sys, numpy as np
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
model = AutoModelForImageTextToText.from_pretrained({str(out)!r}); processor = AutoProcessor.from_pretrained({str(out)!r})
msgs = [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": "Does this image match the prompt: a photo of a circle? Answer yes or no."}}]}}]
text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
batch = processor(text=[text], images=[Image.fromarray(np.full((64, 64, 3), 255, np.uint8))], return_tensors="pt")
logits = model(**batch).logits[0, -1]
assert not any(m == "lab" or m.startswith("lab.") for m in sys.modules), "imported lab"
print(type(model).__name__, logits.shape[0])
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[0] == "LlavaForConditionalGeneration"
    judge = VLMJudge.from_pretrained(out)
    assert json.loads((out / "config.json").read_text())["model_type"] == "llava" and judge.yes_ids


def test_patch_targets_name_the_object_on_each_patch_and_none_elsewhere():
    from lab import world
    from lab.judge_train import patch_targets

    scene = world.Scene((world.Object("square", "red", cx=12.0, cy=12.0, size=16.0),))  # covers pixels 4..20
    shapes, colors = patch_targets(scene, patch=8)
    grid = shapes.reshape(8, 8)
    assert grid[0, 0] == grid[1, 1] == grid[2, 2] == world.SHAPES.index("square")
    assert (grid[4:, :] == len(world.SHAPES)).all() and (grid[:, 4:] == len(world.SHAPES)).all()
    assert set(colors[shapes == world.SHAPES.index("square")]) == {list(world.COLORS).index("red")}
    empty_shapes, empty_colors = patch_targets(world.Scene(()), patch=8)
    assert (empty_shapes == len(world.SHAPES)).all() and (empty_colors == len(world.COLORS)).all()


def test_task_answer_balance_gives_each_answer_half_of_its_tasks_weight():
    from lab.judge_train import pair_weights

    labels = np.array([1, 0, 0, 0, 1, 1, 0, 1])  # position: 1 yes, 3 no; colors: 3 yes, 1 no
    tasks = np.array(["position"] * 4 + ["colors"] * 4)
    w = pair_weights(labels, tasks, "task_answer")
    assert w.mean() == pytest.approx(1.0)
    for task in ("position", "colors"):
        in_task = tasks == task
        assert w[in_task & (labels == 1)].sum() == pytest.approx(w[in_task & (labels == 0)].sum())
        assert w[in_task].sum() == pytest.approx(4.0)  # each task keeps its share of the data
    overall = pair_weights(labels, tasks, "answer")  # balanced overall already: every weight 1
    assert np.allclose(overall, 1.0) and not np.allclose(w, 1.0)
    with pytest.raises(ValueError, match="unknown balance"):
        pair_weights(labels, tasks, "tasks")
    with pytest.raises(ValueError, match="balance='tasks' is unknown"):
        JudgeTrainConfig(balance="tasks")


def test_relation_targets_say_which_shape_is_where_and_nothing_about_absent_shapes():
    from lab import world
    from lab.judge_train import pretrain_vision, relation_targets

    def bit(targets, a, b, relation):
        pairs = [(x, y) for x in world.SHAPES for y in world.SHAPES if x != y]
        return targets[pairs.index((a, b)) * len(world.RELATIONS) + world.RELATIONS.index(relation)]

    scene = world.Scene(
        (world.Object("circle", "red", cx=14.0, cy=32.0, size=12.0), world.Object("square", "blue", 50.0, 32.0, 12.0))
    )
    t = relation_targets(scene)
    assert bit(t, "circle", "square", "left of") == 1 == bit(t, "square", "circle", "right of")
    assert bit(t, "circle", "square", "right of") == 0 == bit(t, "circle", "square", "above")
    assert t.sum() == 2  # no other pair is there to relate
    assert relation_targets(world.Scene(())).sum() == 0
    cfg = quick_config(JudgeTrainConfig(vision_relations=True, vision_steps=2, batch_size=4))
    model, processor = build_judge(cfg.size, cfg.seed)
    losses = pretrain_vision(model, processor, cfg, progress=False)
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_detected_scene_recovers_a_rendered_scene_as_the_evaluator_sees_it():
    from lab import geneval, world
    from lab.judge_train import detected_scene, patch_targets, scene_targets

    truth = world.Scene(
        (world.Object("circle", "red", 16.0, 20.0, 18.0), world.Object("cross", "blue", 46.0, 44.0, 20.0))
    )
    seen = detected_scene(geneval.detect(world.render(truth)))
    assert sorted((o.shape, o.color) for o in seen.objects) == [("circle", "red"), ("cross", "blue")]
    for o in seen.objects:
        true = next(t for t in truth.objects if t.shape == o.shape)
        assert abs(o.cx - true.cx) <= 1.5 and abs(o.cy - true.cy) <= 1.5 and abs(o.size - true.size) <= 2.5
    assert np.allclose(scene_targets(seen), scene_targets(truth), atol=0.05)
    shapes, colors = patch_targets(seen, 8)
    true_shapes, true_colors = patch_targets(truth, 8)
    assert (shapes == true_shapes).mean() >= 0.95 and (colors == true_colors).mean() >= 0.95
    assert detected_scene([]).objects == ()


def test_stage_one_mixes_generated_samples_into_its_batches():
    from lab.judge_data import degraded_renders
    from lab.judge_train import pretrain_vision

    with pytest.raises(ValueError, match="vision_generated_fraction=1.5 must be in"):
        JudgeTrainConfig(vision_generated_fraction=1.5)

    cfg = replace(quick_config(JudgeTrainConfig(vision_generated_fraction=0.5)), vision_steps=2, batch_size=4)
    model, processor = build_judge(cfg.size, cfg.seed)
    samples, _ = degraded_renders(3, seed=5)  # stand-ins for generated samples
    batches, preprocess = [], processor.image_processor

    class Recording:
        def __call__(self, images, **kw):
            batches.append(images)
            return preprocess(images, **kw)

    processor.image_processor = Recording()
    losses = pretrain_vision(model, processor, cfg, progress=False, generated=samples)
    assert len(losses) == 2 and all(np.isfinite(losses))
    for images in batches:  # half of every batch is one of the samples, the rest fresh renders
        from_samples = [any(np.array_equal(x, s) for s in samples) for x in images]
        assert len(images) == 4 and from_samples == [False, False, True, True]


def test_stage_one_lr_warms_up_then_stays_or_decays_by_cosine_to_min_ratio():
    from lab.judge_train import vision_lr_at

    cfg = JudgeTrainConfig(vision_steps=1000, vision_lr=2e-3, warmup_steps=100, min_lr_ratio=0.05)
    cosine = replace(cfg, vision_schedule="cosine")
    for c in (cfg, cosine):  # the same warm-up
        assert vision_lr_at(0, c) == pytest.approx(2e-5) and vision_lr_at(99, c) == pytest.approx(2e-3)
    assert vision_lr_at(999, cfg) == pytest.approx(2e-3)  # v5 to v8: constant to the end
    lrs = [vision_lr_at(s, cosine) for s in range(100, 1000)]
    assert lrs[-1] == pytest.approx(1e-4, rel=1e-3) and all(a >= b for a, b in zip(lrs, lrs[1:]))
    with pytest.raises(ValueError, match="vision_schedule='linear' is unknown"):
        JudgeTrainConfig(vision_schedule="linear")


def test_stage_one_learns_shape_counts_from_scenes_with_one_object_more_or_fewer():
    from lab.judge_train import MAX_COUNT, pretrain_vision, shape_counts, stage_one_scene

    scene = world.Scene((world.Object("circle", "red", 10, 10, 8), world.Object("circle", "blue", 40, 40, 8)))
    assert shape_counts(scene)[world.SHAPES.index("circle")] == 2 and shape_counts(scene).sum() == 2
    rng = np.random.default_rng(0)
    counts = {int(shape_counts(stage_one_scene(rng, miscount=True)).max()) for _ in range(400)}
    assert {1, 2, 3, 4, MAX_COUNT} <= counts  # a prompt asks 2-4; stage 1 also sees 1 and 5
    rng = np.random.default_rng(0)
    assert max(int(shape_counts(stage_one_scene(rng, miscount=False)).max()) for _ in range(400)) < MAX_COUNT
    cfg = replace(quick_config(JudgeTrainConfig(vision_counts=True)), vision_steps=2, batch_size=4)
    model, processor = build_judge(cfg.size, cfg.seed)
    losses = pretrain_vision(model, processor, cfg, progress=False)
    assert len(losses) == 2 and all(np.isfinite(losses))
