"""Depth growth: identity at start, gradients at once, config in step with blocks, clear errors;
the `lab grow` command; the growth experiment's bookkeeping and its figures."""

import json

import numpy as np
import pytest
import torch

from lab import cli, plots
from lab.experiments import growth as experiment
from lab.experiments import preset
from lab.growth import DEFAULT_INIT, GROWTH_FILE, INIT_STD, default_keep, grow_depth, growth_plan
from lab.model import SIZES, build_transformer, load_pipeline
from lab.train import flow_matching_loss
from lab.zoo import STAND_IN_SIZE, stand_in_dir


def random_inputs(transformer, batch=3, tokens=5, seed=0):
    """Random latents, text, mask and timesteps over the whole [0, 1000) range."""
    c = transformer.config
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, c.in_channels, c.sample_size, c.sample_size, generator=g)
    text = torch.randn(batch, tokens, c.caption_channels, generator=g)
    mask = torch.ones(batch, tokens)
    mask[0, -2:] = 0  # padded prompt tokens, as the pipeline sends them
    timesteps = torch.rand(batch, generator=g) * 1000
    return latents, text, mask, timesteps


@torch.no_grad()
def output(transformer, inputs):
    latents, text, mask, t = inputs
    return transformer(latents, encoder_hidden_states=text, encoder_attention_mask=mask, timestep=t).sample


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return build_transformer("tiny")


@pytest.mark.parametrize(
    "strategy, zero_init_copies", [("partial_preservation", False), ("cyclic", True), ("block_replication", True)]
)
def test_growing_with_every_block_kept_leaves_the_output_unchanged(tiny, strategy, zero_init_copies):
    grown = grow_depth(tiny, 7, strategy, keep=tiny.config.num_layers, zero_init_copies=zero_init_copies)
    for seed in range(3):
        inputs = random_inputs(tiny, seed=seed)
        assert (output(grown, inputs) - output(tiny, inputs)).abs().max() <= 1e-5


def test_identity_growth_holds_without_qk_norm_too():
    from diffusers import SanaTransformer2DModel

    torch.manual_seed(0)
    plain = SanaTransformer2DModel.from_config({**build_transformer("tiny").config, "qk_norm": None})
    grown = grow_depth(plain, 4, keep=2)
    inputs = random_inputs(plain)
    assert (output(grown, inputs) - output(plain, inputs)).abs().max() <= 1e-5


def test_growing_a_model_with_a_sincos_position_embedding_keeps_it_and_stays_identity(tmp_path):
    from diffusers import SanaTransformer2DModel

    torch.manual_seed(0)
    sincos = build_transformer("tiny", position_embedding="sincos")  # S v2's transformer (issue 17)
    grown = grow_depth(sincos, 6, keep=2)
    inputs = random_inputs(sincos)
    assert (output(grown, inputs) - output(sincos, inputs)).abs().max() <= 1e-5
    grown.save_pretrained(tmp_path)
    assert SanaTransformer2DModel.from_pretrained(tmp_path).config.interpolation_scale == 1


@pytest.mark.parametrize("strategy", ["partial_preservation", "cyclic", "block_replication"])
def test_grown_config_matches_its_blocks(tiny, strategy):
    grown = grow_depth(tiny, 5, strategy)
    assert grown.config.num_layers == len(grown.transformer_blocks) == 5
    assert tiny.config.num_layers == len(tiny.transformer_blocks) == 2  # the source is untouched


def test_growth_plan_lays_out_blocks_as_each_strategy_says():
    assert growth_plan(4, 7, "partial_preservation") == [0, 1, None, None, None, None, None]
    assert growth_plan(4, 7, "partial_preservation", keep=4) == [0, 1, 2, 3, None, None, None]
    assert growth_plan(3, 7, "cyclic") == [0, 1, 2, 0, 1, 2, 0]
    assert growth_plan(3, 7, "block_replication") == [0, 0, 0, 1, 1, 2, 2]
    assert growth_plan(20, 60, "partial_preservation").count(None) == 42  # the paper: keep 18, add 42


def test_new_blocks_start_with_zero_output_projections_and_unit_qk_norms(tiny):
    grown = grow_depth(tiny, 4, keep=2)
    for block in grown.transformer_blocks[2:]:
        for layer in (block.attn1.to_out[0], block.attn2.to_out[0], block.ff.conv_point):
            assert not layer.weight.any() and (layer.bias is None or not layer.bias.any())
        for norm in (block.attn1.norm_q, block.attn1.norm_k, block.attn2.norm_q, block.attn2.norm_k):
            assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert block.attn1.to_q.weight.abs().max() > 0  # the rest is small random, not zero


def test_default_init_gives_new_blocks_pytorchs_layer_scales_and_keeps_them_identity(tiny):
    small = grow_depth(tiny, 4, keep=2)
    default = grow_depth(tiny, 4, keep=2, init_std=DEFAULT_INIT)
    inputs = random_inputs(tiny)
    assert (output(default, inputs) - output(tiny, inputs)).abs().max() <= 1e-5  # still identity at the start
    fresh = build_transformer("tiny").transformer_blocks[0]  # what PyTorch gives a freshly built block
    for name in ("ff.conv_depth", "ff.conv_inverted", "attn1.to_q"):
        std = {
            m: b.get_submodule(name).weight.std().item()
            for m, b in (("small", small), ("default", default))
            for b in [b.transformer_blocks[3]]
        }
        assert std["default"] == pytest.approx(fresh.get_submodule(name).weight.std().item(), rel=0.15)
        assert std["small"] == pytest.approx(INIT_STD, rel=0.15)
    assert default.transformer_blocks[3].ff.conv_depth.weight.std() > 5 * INIT_STD  # fan_in 9: the largest gap


def test_first_backward_step_gives_every_new_block_nonzero_gradients(tiny):
    grown = grow_depth(tiny, 6)
    latents, text, mask, _ = random_inputs(tiny)
    loss = flow_matching_loss(grown, latents, text, mask, torch.Generator().manual_seed(0))
    loss.backward()
    kept = default_keep(tiny.config.num_layers, "partial_preservation")
    for i, block in enumerate(grown.transformer_blocks[kept:], kept):
        for name, layer in (
            ("attn1", block.attn1.to_out[0]),
            ("attn2", block.attn2.to_out[0]),
            ("ff", block.ff.conv_point),
        ):
            assert layer.weight.grad is not None and layer.weight.grad.abs().max() > 0, f"block {i} {name}"


def test_save_load_round_trip_gives_identical_outputs(tiny, tmp_path):
    from diffusers import SanaTransformer2DModel

    grown = grow_depth(tiny, 6, "partial_preservation")
    grown.save_pretrained(tmp_path / "grown")
    loaded = SanaTransformer2DModel.from_pretrained(tmp_path / "grown")
    assert loaded.config.num_layers == len(loaded.transformer_blocks) == 6
    inputs = random_inputs(tiny)
    assert torch.equal(output(loaded, inputs), output(grown, inputs))


def test_growing_sana_1_6b_to_60_blocks_gives_the_4_8b_parameter_count():
    source = build_transformer("sana-1.6b", device="meta")
    grown = grow_depth(source, 60, "partial_preservation")
    target = build_transformer("sana-4.8b", device="meta")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert grown.config.num_layers == 60
    assert count(grown) == count(target)


def test_grown_model_shares_no_parameters_with_its_source(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    grown = grow_depth(tiny, 4, "cyclic")
    with torch.no_grad():
        for p in grown.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"num_layers": 2}, ValueError, ["num_layers=2", "2 blocks"]),
        ({"num_layers": 1}, ValueError, ["num_layers=1"]),
        ({"num_layers": 6, "keep": 0}, ValueError, ["keep=0", "1 to 2"]),
        ({"num_layers": 6, "keep": 3}, ValueError, ["keep=3", "1 to 2"]),
        ({"num_layers": 6, "strategy": "stacking"}, ValueError, ["'stacking'", "partial_preservation", "cyclic"]),
        ({"num_layers": 6, "init_std": "kaiming"}, ValueError, ["init_std='kaiming'", "> 0", "'default'"]),
        ({"num_layers": 6, "init_std": 0.0}, ValueError, ["init_std=0.0", "> 0"]),
        ({"num_layers": 6, "init_std": float("inf")}, ValueError, ["init_std=inf", "> 0"]),
    ],
)
def test_bad_growth_arguments_raise_errors_naming_the_value_and_the_accepted_ones(tiny, kwargs, error, words):
    with pytest.raises(error) as info:
        grow_depth(tiny, **kwargs)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_growing_something_that_is_not_a_sana_transformer_raises_a_type_error(tiny_pipeline):
    with pytest.raises(TypeError, match="SanaTransformer2DModel, got SanaPipeline.*pipe.transformer"):
        grow_depth(tiny_pipeline, 6)
    with pytest.raises(TypeError, match="got Linear"):
        grow_depth(torch.nn.Linear(2, 2), 6)


@pytest.mark.parametrize(
    "strategy, added", [("partial_preservation", [1, 2, 3, 4]), ("cyclic", [3, 4]), ("block_replication", [1, 3])]
)
def test_added_blocks_are_the_grown_blocks_that_are_no_kept_source_block(tmp_path, strategy, added):
    from lab.growth import added_blocks, growth_record

    # 3 source blocks grown to 5: partial preservation keeps 1 ([0, -, -, -, -]), cyclic [0, 1, 2, 0, 1],
    # block replication [0, 0, 1, 1, 2]
    (tmp_path / GROWTH_FILE).write_text(json.dumps(growth_record("S", 3, 5, strategy)))
    assert added_blocks(tmp_path) == added


def test_added_blocks_of_a_pipeline_that_was_not_grown_is_an_error_naming_growth_json(tiny_pipeline_dir):
    from lab.growth import added_blocks

    with pytest.raises(ValueError, match=f"has no {GROWTH_FILE}.*lab grow"):
        added_blocks(tiny_pipeline_dir)


def test_lab_grow_writes_a_complete_pipeline_that_diffusers_loads(tiny_pipeline_dir, tmp_path, capsys, run_lab):
    from diffusers import SanaPipeline

    out = tmp_path / "grown"
    cli.main(
        [
            "grow",
            "--model",
            str(tiny_pipeline_dir),
            "--num-layers",
            "6",
            "--strategy",
            "partial_preservation",
            "--keep",
            "2",
            "--out",
            str(out),
        ]
    )
    assert str(out) in capsys.readouterr().out
    pipe = SanaPipeline.from_pretrained(out)
    assert pipe.transformer.config.num_layers == len(pipe.transformer.transformer_blocks) == 6
    record = json.loads((out / GROWTH_FILE).read_text())
    assert record["plan"] == [0, 1, None, None, None, None] and record["source"] == str(tiny_pipeline_dir)
    assert record["init_std"] == INIT_STD  # the CLI's default is the library's
    del record["init_std"]  # as written before the option existed: the same run, redone without --overwrite
    (out / GROWTH_FILE).write_text(json.dumps(record))
    grow = ["grow", "--model", tiny_pipeline_dir, "--num-layers", 6, "--strategy", "partial_preservation", "--keep", 2]
    assert run_lab(*grow, "--out", out)[0] == 0
    code, _, err = run_lab("grow", "--model", tiny_pipeline_dir, "--num-layers", 6, "--init-std", "-1", "--out", out)
    assert code == 2 and "'-1' is not a finite positive number or 'default'" in err
    code, _, err = run_lab(
        "grow", "--model", tiny_pipeline_dir, "--num-layers", 6, "--strategy", "deep", "--out", tmp_path / "bad"
    )
    assert code == 2 and err.startswith("lab grow: error: unknown growth strategy 'deep'") and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------------------------
# The experiment


def quick(**overrides):
    return preset(experiment.Config, "growth", "quick", **overrides)


# grown vs scratch for 2 steps at batch 2, GenEval-mini on 6 prompts at 2 sampling steps: seconds on a CPU
TWO_TINY_ARMS = dict(
    arms=["grown", "scratch"],
    train={"steps": 2, "batch_size": 2, "warmup_steps": 1},
    eval_prompt_limit=6,
    sampler={"steps": 2},
    loss_window=1,
)


def test_growth_experiment_records_loss_and_geneval_for_every_arm(tmp_path):
    source = stand_in_dir(tmp_path)
    cfg = quick(**TWO_TINY_ARMS, eval_every=1, importance_prompts=0)
    metrics = experiment.run_arms(source, tmp_path / "runs", cfg)
    assert "importance" not in experiment.summary_table(metrics)  # not measured: no column
    blocks = SIZES[STAND_IN_SIZE].num_layers
    assert set(metrics["runs"]) == {"grown", "scratch"}
    for run in metrics["runs"].values():
        assert run["num_layers"] == 3 * blocks
        assert [s for s, _ in run["loss"]] == [1, 2] and [s for s, _ in run["geneval"]] == [0, 1, 2]
        assert all(0 <= v <= 1 for _, v in run["geneval"])
    grown, scratch = metrics["runs"]["grown"], metrics["runs"]["scratch"]
    assert grown["keep"] == blocks - 2 and scratch["keep"] is None
    assert grown["params"] == scratch["params"]
    assert "steps_to_scratch_final_loss" in metrics["summary"]["arms"]["grown"]
    assert "| from scratch |" in experiment.summary_table(metrics)
    assert experiment.block_plans(cfg, blocks)["grown"] == [0, 1] + [None] * (3 * blocks - 2)


def test_growth_run_on_a_stand_in_writes_its_metrics_and_draws_both_figures(tmp_path):
    cfg = quick(
        source=str(tmp_path / "no-such-S"),
        shipped="",
        work_dir=str(tmp_path / "work"),
        eval_every=2,
        **TWO_TINY_ARMS,
    )
    metrics = experiment.run(cfg, tmp_path / "out", mode="quick")
    assert metrics["source"]["label"].startswith("untrained tiny stand-in") and "shipped" not in metrics
    stored = json.loads((tmp_path / "out" / experiment.METRICS_FILE).read_text())
    assert stored["mode"] == "quick" and stored["config"]["train"]["steps"] == 2
    assert [s for s, _ in stored["runs"]["grown"]["geneval"]] == [0, 2]
    figs = experiment.figures(stored)
    assert set(figs) == {"growth_vs_scratch", "growth_strategies", "added_block_importance"}  # the preset measures it
    plots.save_figures(figs, tmp_path / "figs")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "added_block_importance.png",
        "growth_strategies.png",
        "growth_vs_scratch.png",
    ]


def test_the_new_lr_arm_trains_only_the_added_blocks_faster_and_its_importance_ratio_is_measured(tmp_path):
    source = stand_in_dir(tmp_path)
    cfg = quick(
        arms=["grown", "grown_new_lr"],
        train={"steps": 1, "batch_size": 2, "warmup_steps": 1},
        eval_every=1,
        eval_prompt_limit=2,
        sampler={"steps": 2},
        loss_window=1,
        new_block_lr_scale=50.0,
        importance_prompts=2,
    )
    metrics = experiment.run_arms(source, tmp_path / "runs", cfg)
    grown, fast = metrics["runs"]["grown"], metrics["runs"]["grown_new_lr"]
    assert (grown["new_block_lr_scale"], fast["new_block_lr_scale"]) == (1.0, 50.0) and "x50" in fast["label"]
    blocks = SIZES[STAND_IN_SIZE].num_layers
    assert grown["added_blocks"] == fast["added_blocks"] == list(range(blocks - 2, 3 * blocks))

    def transformer(run):
        return load_pipeline(run["pipeline"]).transformer.transformer_blocks

    # one step from the same start on the same data: the kept blocks take the plain arm's step, the added ones a larger one
    plain, faster, init = transformer(grown), transformer(fast), transformer({"pipeline": tmp_path / "runs/grown/init"})

    def moved(model, i):
        return sum((a - b).norm() for a, b in zip(model[i].parameters(), init[i].parameters()))

    assert all(moved(plain, i) == moved(faster, i) for i in range(blocks - 2))
    assert all(moved(faster, i) > 5 * moved(plain, i) for i in grown["added_blocks"])
    ratios = [metrics["summary"]["arms"][a]["added_to_kept_importance"] for a in ("grown", "grown_new_lr")]
    assert all(r >= 0 for r in ratios) and ratios[1] > ratios[0]
    assert set(experiment.figures(metrics)) >= {"growth_added_blocks", "added_block_importance"}
    table = experiment.summary_table(metrics)
    assert "added / kept importance, per block |" in table and f"| {ratios[1]:.1%} |" in table
    # the added blocks taken together, against the source blocks growth dropped
    dropped = metrics["source"]["dropped_span_importance"]
    assert dropped > 0 and all(r["added_span_importance"] >= 0 for r in (grown, fast))
    spans = [metrics["summary"]["arms"][a]["added_span_to_dropped_span"] for a in ("grown", "grown_new_lr")]
    assert spans[1] > spans[0] and spans[1] == pytest.approx(fast["added_span_importance"] / dropped)


def test_added_to_kept_importance_divides_the_added_blocks_mean_by_the_kept_blocks_mean():
    run = {"added_blocks": [2, 3], "importance": {"mean": [0.4, 0.2, 0.03, 0.01]}}
    assert experiment.added_to_kept_importance(run) == pytest.approx(0.02 / 0.3)
    assert experiment.added_to_kept_importance({"added_blocks": [2]}) is None  # not measured
    assert experiment.added_to_kept_importance({"added_blocks": [], "importance": {"mean": [1.0]}}) is None


def test_steps_to_reach_finds_the_first_step_whose_smoothed_loss_is_low_enough():
    curve = [[1, 4.0], [2, 2.0], [3, 1.0], [4, 1.0]]
    assert experiment.steps_to_reach(curve, 2.0, window=1) == 2
    assert experiment.steps_to_reach(curve, 2.0, window=2) == 3  # (2 + 1) / 2 <= 2 first at step 3
    assert experiment.steps_to_reach(curve, 0.5, window=1) is None
    assert np.allclose(experiment.moving_average([1, 3, 5], 2), [1, 2, 4])


def test_steps_to_loss_gives_each_runs_steps_and_its_ratio_to_the_first_run():
    grown = [[k, 1.0 / k] for k in range(1, 11)]  # reaches 0.25 at step 4
    scratch = [[k, 2.0 / k] for k in range(1, 11)]  # at step 8, and never 0.11 within its 10 steps
    rows = experiment.steps_to_loss({"grown": grown, "scratch": scratch}, levels=(0.25, 0.11), window=1)
    assert rows[0] == {"loss": 0.25, "steps": {"grown": 4, "scratch": 8}, "ratio": {"grown": 1.0, "scratch": 2.0}}
    assert rows[1]["steps"] == {"grown": 10, "scratch": None} and rows[1]["ratio"]["scratch"] is None
    table = experiment.steps_to_loss_table(rows, {"grown": 10, "scratch": 10})
    assert "| 0.25 | 4 | 8 | 2.0x |" in table and "| 0.11 | 10 | > 10 | > 1.0x |" in table
    with pytest.raises(ValueError, match="window=0"):
        experiment.steps_to_loss({"grown": grown}, window=0)


def test_steps_to_loss_command_writes_its_table_and_figure_and_names_a_folder_without_a_log(run_lab, tmp_path):
    for name, scale in (("grown", 1.0), ("scratch", 3.0)):
        (tmp_path / name).mkdir()
        lines = [json.dumps({"step": k, "loss": scale / k}) for k in range(1, 31)]
        (tmp_path / name / "train_log.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, stdout, err = run_lab(
        "steps-to-loss", tmp_path / "grown", tmp_path / "scratch", "--levels", "0.5", "--window", "1", "--out", out
    )
    assert code == 0, err
    assert "| 0.50 | 2 | 6 | 3.0x |" in stdout
    result = json.loads((out / "steps_to_loss.json").read_text())
    assert result["rows"][0]["steps"] == {"grown": 2, "scratch": 6} and result["runs"]["scratch"]["last_step"] == 30
    assert (out / "steps_to_loss.png").stat().st_size > 0
    code, _, err = run_lab("steps-to-loss", tmp_path, "--out", out)
    assert code == 2 and "has no train_log.jsonl" in err
    code, _, err = run_lab("steps-to-loss", tmp_path / "grown", tmp_path / "scratch", "--labels", "a", "--out", out)
    assert code == 2 and "one distinct label per run" in err


def test_summary_checks_the_papers_loss_target_against_from_scratch():
    steps = range(1, 11)
    metrics = {
        "source": {"geneval": 0.3},
        "runs": {
            "scratch": {"loss": [[s, 1.0 / s] for s in steps], "geneval": [[0, 0.0], [10, 0.2]]},
            "grown": {"loss": [[s, 0.1 if s >= 3 else 1.0] for s in steps], "geneval": [[0, 0.3], [10, 0.4]]},
        },
    }
    summary = experiment.summarize(metrics, window=1)
    assert summary["arms"]["grown"]["steps_to_scratch_final_loss"] == 3
    assert summary["arms"]["grown"]["fraction_of_steps"] == pytest.approx(0.3)
    assert summary["loss_target_met"] and summary["geneval_target_met"]
    metrics["runs"]["grown"]["loss"] = [[s, 0.5] for s in steps]  # never reaches scratch's 0.1
    summarize_never = experiment.summarize(metrics, window=1)
    assert summarize_never["arms"]["grown"]["steps_to_scratch_final_loss"] is None
    assert summarize_never["loss_target_met"] is False


def test_full_set_target_is_read_from_the_shipped_models_cards_at_equal_images_per_prompt(tmp_path):
    def card(name, correct_by_index, tags=("colors", "counting")):
        """A stored report: per prompt (one per tag), image i correct as correct_by_index[i]."""
        images = [{"prompt_index": p, "tag": t, "correct": c} for p, t in enumerate(tags) for c in correct_by_index]
        n = len(correct_by_index)
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "geneval_full.json").write_text(
            json.dumps({"overall": sum(correct_by_index) / n, "images_per_prompt": n, "images": images})
        )

    assert experiment.shipped_geneval_gain(tmp_path / "S", tmp_path / "L") is None  # no cards yet
    card("S", [False, True, True, True]), card("L", [True, True, True, False])
    got = experiment.shipped_geneval_gain(tmp_path / "S", tmp_path / "L")
    assert got["gain"] == pytest.approx(0.0) and not got["target_met"] and got["images_per_prompt"] == 4
    card("L", [True])  # one image per prompt: S is scored on its first image of each prompt too
    got = experiment.shipped_geneval_gain(tmp_path / "S", tmp_path / "L")
    assert (got["source"], got["grown"], got["images_per_prompt"], got["target_met"]) == (0.0, 1.0, 1, True)


def test_full_mode_without_a_trained_source_says_how_to_make_one(tmp_path):
    cfg = preset(experiment.Config, "growth", "full", source=str(tmp_path / "S"), work_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="lab train --config configs/S.yaml"):
        experiment.run(cfg)
    with pytest.raises(ValueError, match="unknown mode 'fast'.*'quick', 'full'"):
        preset(experiment.Config, "growth", "fast")


def test_unknown_experiment_arms_are_rejected_with_the_accepted_names():
    with pytest.raises(ValueError, match="unknown arms \\['wide'\\].*'grown'"):
        experiment.GrowthExperimentConfig(arms=("grown", "wide"))


def test_training_curves_draw_one_loss_and_one_score_line_per_run_in_matching_colours(tmp_path):
    loss = {"grown": [(s, 1.0 / s) for s in range(1, 20)], "scratch": [(s, 2.0 / s) for s in range(1, 20)]}
    score = {"grown": [(0, 0.3), (10, 0.4), (19, 0.5)], "scratch": [(0, 0.0), (10, 0.1), (19, 0.2)]}
    fig = plots.training_curves(
        loss, score, reference={"S": 0.3}, labels={"grown": "grown L"}, stamp={"mode": "quick", "commit": "abc1234"}
    )
    fig.savefig(tmp_path / "curves.png")
    left, right = fig.axes
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["grown L", "scratch"]
    smoothed = [ln for ln in left.get_lines() if ln.get_alpha() is None]
    assert [ln.get_color() for ln in smoothed] == [ln.get_color() for ln in right.get_lines()[:2]]
    assert any("commit=abc1234" in t.get_text() for t in fig.texts)


def test_single_panel_curves_make_their_own_stamped_figure():
    fig = plots.loss_curves({"grown": [(1, 1.0), (2, 0.5)]}, smooth=0, stamp={"commit": "abc1234"})
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1  # smooth=0: raw line only
    fig = plots.metric_vs_steps({"grown": [(0, 0.1), (2, 0.3)]}, reference={"S": 0.2}, stamp={"commit": "abc1234"})
    assert any("commit=abc1234" in t.get_text() for t in fig.texts)
    with pytest.raises(ValueError, match="smooth=1.5"):
        plots.loss_curves({"grown": [(1, 1.0)]}, smooth=1.5)
