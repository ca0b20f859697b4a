"""Block importance, depth pruning, prune-on-load, `lab prune`, and the pruning experiment's analysis."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lab import cli, plots, pruning
from lab.experiments import pruning as experiment
from lab.model import build_pipeline, build_transformer, load_pipeline

PROMPTS = ["a photo of a red circle", "a photo of two blue squares", "a photo of a green cross"]
DEEP = "tiny-6"  # tiny width, enough blocks to prune to several depths


@pytest.fixture(scope="module")
def deep_transformer():
    torch.manual_seed(0)
    return build_transformer(DEEP)


@pytest.fixture(scope="module")
def deep_pipeline_dir(tmp_path_factory, tiny_vae_dir):
    from diffusers import AutoencoderDC

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("deep") / "pipe"
    build_pipeline("tiny-4", vae=AutoencoderDC.from_pretrained(tiny_vae_dir)).save_pretrained(path)
    return path


def forward(transformer, seed: int = 0) -> torch.Tensor:
    c = transformer.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c.in_channels, c.sample_size, c.sample_size, generator=g)
    text = torch.randn(2, 5, c.caption_channels, generator=g)
    with torch.no_grad():
        return transformer(
            x,
            encoder_hidden_states=text,
            encoder_attention_mask=torch.ones(2, 5, dtype=torch.long),
            timestep=torch.tensor([300.0, 700.0]),
            return_dict=False,
        )[0]


def table_of(mean) -> pruning.ImportanceTable:
    mean = np.asarray(mean, dtype=float)
    return pruning.ImportanceTable(np.stack([mean, mean], axis=1), [999.0, 499.0])


def pipeline_reference(pipe, prompts, steps, guidance):
    """Importance measured independently: hooks on the blocks while SanaPipeline.__call__ samples."""
    per_call = {i: [] for i in range(len(pipe.transformer.transformer_blocks))}
    handles = []
    for i, block in enumerate(pipe.transformer.transformer_blocks):

        def hook(module, args, output, i=i):
            per_call[i].append(1 - F.cosine_similarity(args[0], output, dim=-1).mean().item())

        handles.append(block.register_forward_hook(hook))
    try:
        pipe(
            prompt=prompts,
            generator=[torch.Generator().manual_seed(s) for s in range(len(prompts))],
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=64,
            width=64,
            output_type="latent",
            use_resolution_binning=False,
            complex_human_instruction=None,
            max_sequence_length=16,
        )
    finally:
        for h in handles:
            h.remove()
    return np.array([per_call[i] for i in sorted(per_call)])  # (blocks, steps)


# --- block importance ---------------------------------------------------------------------------


def test_importance_table_has_a_row_per_block_a_column_per_timestep_and_their_mean(tiny_pipeline):
    table = pruning.block_importance(tiny_pipeline, PROMPTS, timesteps=3)
    assert table.values.shape == (2, 3) and table.num_blocks == 2 and table.num_prompts == 3
    assert np.all(np.diff(table.timesteps) < 0) and table.timesteps[0] > 900  # noisiest first
    assert np.allclose(table.mean, table.values.mean(axis=1))
    assert np.all(np.isfinite(table.values)) and np.all(table.values >= 0)


def test_importance_equals_one_minus_token_cosine_inside_the_pipelines_own_sampling_loop(tiny_pipeline):
    table = pruning.block_importance(tiny_pipeline, PROMPTS, timesteps=3, guidance_scale=4.5, branches="both")
    reference = pipeline_reference(tiny_pipeline, PROMPTS, 3, 4.5)
    assert np.allclose(table.values, reference, atol=1e-5)


def test_span_importance_compares_the_spans_input_with_its_output_and_leaves_the_pipeline_as_it_was(tiny_pipeline):
    from lab.growth import grow_pipeline

    blocks = tiny_pipeline.transformer.transformer_blocks
    per_block = pruning.block_importance(tiny_pipeline, PROMPTS, timesteps=2)
    one = pruning.span_importance(tiny_pipeline, 1, 2, PROMPTS, timesteps=2)  # a span of one block is that block
    assert np.allclose(one.values, per_block.values)
    both = pruning.span_importance(tiny_pipeline, 0, 2, PROMPTS, timesteps=2)
    assert both.num_blocks == 1 and both.mean[0] > per_block.mean.max()  # two changes compound
    assert tiny_pipeline.transformer.transformer_blocks is blocks
    grown = grow_pipeline(tiny_pipeline, 5, keep=2)  # three identity blocks appended: together they change nothing
    assert pruning.span_importance(grown, 2, 5, PROMPTS, timesteps=2).mean[2] == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="span 1..3 is not within the 2 blocks"):
        pruning.span_importance(tiny_pipeline, 1, 3, PROMPTS)


def test_cond_branch_option_averages_only_the_conditional_rows(tiny_pipeline):
    both = pruning.block_importance(tiny_pipeline, PROMPTS, timesteps=2, branches="both")
    cond = pruning.block_importance(tiny_pipeline, PROMPTS, timesteps=2, branches="cond")
    trace = pruning.trace_blocks(tiny_pipeline, PROMPTS, [0, 1, 2], 2)
    uncond_only = 1 - trace.similarity[:, :, 0, :].mean(axis=2).T
    assert np.allclose(cond.values, 1 - trace.similarity[:, :, 1, :].mean(axis=2).T)
    assert np.allclose(both.values, (cond.values + uncond_only) / 2)
    assert not np.allclose(both.values, cond.values)


def test_importance_without_cfg_measures_the_single_branch(tiny_pipeline):
    table = pruning.block_importance(tiny_pipeline, PROMPTS, timesteps=2, guidance_scale=1.0)
    assert np.allclose(table.values, pipeline_reference(tiny_pipeline, PROMPTS, 2, 1.0), atol=1e-5)


def test_importance_costs_one_transformer_forward_per_batch_and_timestep(tiny_pipeline):
    calls = {"transformer": 0, "blocks": [0, 0]}

    def count_transformer(*_):
        calls["transformer"] += 1

    handles = [tiny_pipeline.transformer.register_forward_pre_hook(count_transformer)]
    for i, block in enumerate(tiny_pipeline.transformer.transformer_blocks):
        handles.append(
            block.register_forward_pre_hook(lambda *_, i=i: calls["blocks"].__setitem__(i, calls["blocks"][i] + 1))
        )
    try:
        pruning.block_importance(tiny_pipeline, PROMPTS + PROMPTS[:2], timesteps=3, batch_size=2)  # 3 batches
    finally:
        for h in handles:
            h.remove()
    assert calls["transformer"] == 3 * 3 and calls["blocks"] == [9, 9]


def test_importance_leaves_the_pipeline_weights_hooks_scheduler_and_global_rng_untouched(tiny_pipeline):
    pipe = tiny_pipeline
    weights = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    sched = (pipe.scheduler.num_inference_steps, getattr(pipe.scheduler, "_step_index", None))
    rng = torch.get_rng_state()
    pruning.block_importance(pipe, PROMPTS, timesteps=2)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(v, pipe.transformer.state_dict()[k]) for k, v in weights.items())
    assert all(not b._forward_hooks and not b._forward_pre_hooks for b in pipe.transformer.transformer_blocks)
    assert (pipe.scheduler.num_inference_steps, getattr(pipe.scheduler, "_step_index", None)) == sched


def test_trace_follows_the_pipelines_sampling_trajectory_to_the_same_latents(tiny_pipeline):
    trace = pruning.trace_blocks(tiny_pipeline, PROMPTS, [5, 6, 7], timesteps=3, keep_predictions=True)
    latents = tiny_pipeline(
        prompt=PROMPTS,
        generator=[torch.Generator().manual_seed(s) for s in (5, 6, 7)],
        num_inference_steps=3,
        height=64,
        width=64,
        output_type="latent",
        use_resolution_binning=False,
        complex_human_instruction=None,
        max_sequence_length=16,
    ).images
    assert torch.allclose(trace.latents, latents, atol=1e-6)
    assert trace.similarity.shape == (3, 2, 2, 3) and trace.predictions.shape == (3, *latents.shape)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompts=[]), "no calibration prompts"),
        (dict(prompts="a photo of a red circle"), "list of prompts"),
        (dict(prompts=["a photo of a red circle", "  "]), "prompt 1 is empty"),
        (dict(branches="uncond"), "unknown branches 'uncond'"),
        (dict(timesteps=0), "timesteps must be a positive"),
        (dict(batch_size=0), "batch_size must be >= 1"),
    ],
)
def test_importance_rejects_bad_input_with_a_clear_message(tiny_pipeline, kwargs, message):
    args = {"prompts": PROMPTS, "timesteps": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        pruning.block_importance(tiny_pipeline, **args)


def test_importance_table_survives_a_json_round_trip(tmp_path):
    table = pruning.ImportanceTable(
        np.random.default_rng(0).random((5, 3)),
        [999.0, 666.0, 333.0],
        num_prompts=7,
        branches="cond",
        source="L",
        prompts=["a photo of a circle"],
    )
    back = pruning.ImportanceTable.load(table.save(tmp_path / "imp.json"))
    assert np.allclose(back.values, table.values) and back.ranking() == table.ranking()
    assert (back.branches, back.num_prompts, back.source) == ("cond", 7, "L")
    with pytest.raises(ValueError, match="lacks"):
        pruning.ImportanceTable.from_json({"values": [[1.0]]})
    with pytest.raises(ValueError, match="no importance table"):
        pruning.ImportanceTable.load(tmp_path / "missing.json")


def test_head_and_tail_vs_middle_summary():
    summary = pruning.edge_vs_middle(table_of([0.9, 0.2, 0.1, 0.2, 0.8]), edge_fraction=0.2)
    assert summary == {"head": 0.9, "middle": pytest.approx(0.5 / 3), "tail": 0.8, "edge_blocks": 1}


# --- pruning ------------------------------------------------------------------------------------


def test_prune_blocks_keeps_the_chosen_blocks_in_order_and_updates_num_layers(deep_transformer):
    pruned = pruning.prune_blocks(deep_transformer, [4, 0, 2])
    assert pruned.config.num_layers == 3 == len(pruned.transformer_blocks)
    for j, i in enumerate([0, 2, 4]):
        a, b = pruned.transformer_blocks[j].state_dict(), deep_transformer.transformer_blocks[i].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_pruning_leaves_the_source_transformer_unchanged(deep_transformer):
    before = forward(deep_transformer)
    pruned = pruning.prune_depth(deep_transformer, 2, by="last")
    assert deep_transformer.config.num_layers == 6 == len(deep_transformer.transformer_blocks)
    assert torch.equal(before, forward(deep_transformer))
    assert pruned.transformer_blocks[0] is not deep_transformer.transformer_blocks[0]


def test_pruned_transformer_save_load_round_trip_gives_the_same_outputs(deep_transformer, tmp_path):
    from diffusers import SanaTransformer2DModel

    pruned = pruning.prune_depth(deep_transformer, 3, by="uniform")
    pruned.save_pretrained(tmp_path / "t")
    loaded = SanaTransformer2DModel.from_pretrained(tmp_path / "t")
    assert json.loads((tmp_path / "t" / "config.json").read_text())["num_layers"] == 3
    assert len(loaded.transformer_blocks) == 3 and torch.allclose(forward(pruned), forward(loaded))


def test_prune_by_importance_keeps_the_most_important_blocks(deep_transformer):
    table = table_of([0.9, 0.1, 0.3, 0.05, 0.2, 0.8])
    assert pruning.select_blocks(6, 3, "importance", table) == [0, 2, 5]
    pruned = pruning.prune_depth(deep_transformer, 3, by="importance", importance=table)
    assert torch.equal(
        pruned.transformer_blocks[1].scale_shift_table, deep_transformer.transformer_blocks[2].scale_shift_table
    )


def test_naive_methods_drop_the_last_keep_evenly_spaced_or_seeded_random_blocks():
    assert pruning.select_blocks(6, 3, "last") == [0, 1, 2]
    assert pruning.select_blocks(6, 3, "uniform") == [0, 2, 5]
    assert pruning.select_blocks(24, 8, "uniform")[0] == 0 and pruning.select_blocks(24, 8, "uniform")[-1] == 23
    assert len(set(pruning.select_blocks(24, 23, "uniform"))) == 23
    a, b = pruning.select_blocks(24, 12, "random", seed=1), pruning.select_blocks(24, 12, "random", seed=1)
    assert a == b == sorted(a) and len(set(a)) == 12 and a != pruning.select_blocks(24, 12, "random", seed=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=0), "depth 0 is not a valid pruned depth for a transformer of 6 blocks"),
        (dict(depth=6), "expected an integer from 1 to 5"),
        (dict(depth=-2), "depth -2"),
        (dict(depth=2.5), "depth 2.5"),
        (dict(by="magnitude"), "unknown pruning method 'magnitude'"),
        (dict(by="importance", importance=None), "needs importance="),
        (dict(by="importance", importance=table_of([0.1, 0.2, 0.3])), "table has 3 blocks but the transformer has 6"),
    ],
)
def test_prune_depth_rejects_bad_depth_method_and_a_table_from_another_model(deep_transformer, kwargs, message):
    args = {"depth": 3, "by": "importance", "importance": table_of(np.arange(6))} | kwargs
    with pytest.raises(ValueError, match=message):
        pruning.prune_depth(deep_transformer, **args)


@pytest.mark.parametrize("keep", [[], [0, 0], [6], [-1]])
def test_prune_blocks_rejects_empty_repeated_or_out_of_range_indices(deep_transformer, keep):
    with pytest.raises(ValueError, match="distinct block indices in \\[0, 5\\]"):
        pruning.prune_blocks(deep_transformer, keep)


def test_load_pruned_prunes_on_load_from_a_stored_ranking(deep_pipeline_dir, tmp_path):
    table = table_of([0.1, 0.9, 0.2, 0.8])
    table.save(tmp_path / "ranking.json")
    pipe = pruning.load_pruned(deep_pipeline_dir, 2, tmp_path / "ranking.json")
    full = load_pipeline(deep_pipeline_dir)
    assert pipe.transformer.config.num_layers == 2
    assert torch.allclose(forward(pipe.transformer), forward(pruning.prune_blocks(full.transformer, [1, 3])))
    with pytest.raises(ValueError, match="table has 6 blocks but the transformer has 4"):
        pruning.load_pruned(deep_pipeline_dir, 2, table_of(np.arange(6)))


def test_prune_pipeline_dir_writes_a_complete_pipeline_with_its_record(deep_pipeline_dir, tmp_path):
    from diffusers import SanaPipeline

    table = table_of([0.1, 0.9, 0.2, 0.8])
    out = pruning.prune_pipeline_dir(deep_pipeline_dir, tmp_path / "L-2", 2, "importance", table, seed=3)
    pruned = SanaPipeline.from_pretrained(out)  # plain diffusers: no lab code needed
    record = json.loads((out / pruning.PRUNING_RECORD).read_text())
    assert pruned.transformer.config.num_layers == len(pruned.transformer.transformer_blocks) == 2
    assert record["kept_blocks"] == [1, 3] and record["source_num_layers"] == 4
    assert (record["source"], record["by"], record["seed"]) == (str(deep_pipeline_dir), "importance", 3)
    full = load_pipeline(deep_pipeline_dir)
    assert torch.allclose(forward(pruned.transformer), forward(pruning.prune_blocks(full.transformer, [1, 3])))
    named = pruning.prune_pipeline_dir(full, tmp_path / "last", 1, "last", record={"source": "L"})  # a loaded pipeline
    assert json.loads((named / pruning.PRUNING_RECORD).read_text())["source"] == "L"
    with pytest.raises(ValueError, match="expected an integer from 1 to 3"):
        pruning.prune_pipeline_dir(full, tmp_path / "bad", 4, "last")
    assert not (tmp_path / "bad").exists()


def test_lab_prune_measures_prunes_saves_a_plain_diffusers_pipeline_and_fine_tunes_it(deep_pipeline_dir, tmp_path):
    from diffusers import SanaPipeline

    cfg = tmp_path / "ft.yaml"
    cfg.write_text(
        "steps: 100\nbatch_size: 2\nwarmup_steps: 1\nmin_lr_ratio: 1.0\nema_decay: 0.0\ncheckpoint_every: 50\n"
    )
    out = tmp_path / "L-2"
    cli.main(
        [
            "prune",
            "--model",
            str(deep_pipeline_dir),
            "--depth",
            "2",
            "--timesteps",
            "2",
            "--finetune-steps",
            "1",
            "--finetune-config",
            str(cfg),
            "--out",
            str(out),
        ]
    )
    pruned = SanaPipeline.from_pretrained(out / "pruned")
    record = json.loads((out / "pruned" / pruning.PRUNING_RECORD).read_text())
    table = pruning.ImportanceTable.load(out / "importance.json")
    assert pruned.transformer.config.num_layers == 2 and record["kept_blocks"] == sorted(table.ranking()[:2])
    assert record["source_num_layers"] == 4 and table.num_prompts == 120  # the quick calibration set
    assert load_pipeline(out / "pipeline").transformer.config.num_layers == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--depth", "4"], "expected an integer from 1 to 3"),
        (["--depth", "2", "--by", "middle"], "unknown pruning method 'middle'"),
        (
            ["--depth", "2", "--finetune-steps", "-1"],
            "argument --finetune-steps: -1 is out of range; expected an integer >= 0",
        ),
    ],
)
def test_lab_prune_rejects_bad_arguments_before_any_work(deep_pipeline_dir, tmp_path, argv, message, run_lab):
    code, _, err = run_lab("prune", "--model", deep_pipeline_dir, "--out", tmp_path / "x", *argv)
    assert code == 2 and err.startswith("lab prune: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


# --- figures and the experiment's analysis ------------------------------------------------------


def test_importance_figures_render_lines_per_timestep_and_a_heatmap():
    table = pruning.ImportanceTable(np.random.default_rng(0).random((6, 4)), [999.0, 749.0, 499.0, 249.0])
    lines = plots.block_importance_lines(table, stamp={"model": "L"})
    assert len(lines.axes[0].lines) == 4 + 1  # one per timestep and the mean
    heat = plots.importance_heatmap(table)
    assert heat.axes[0].images[0].get_array().shape == (6, 4)
    rows = [{"method": m, "depth": d, "before": 0.2, "after": 0.4} for m in pruning.METHODS for d in (2, 4)]
    curves = plots.pruning_curves(rows, unpruned=0.5, scratch=[{"label": "scratch", "depth": 2, "score": 0.3}])
    for fig in (lines, heat, curves):
        fig.savefig(io.BytesIO(), format="png")


def metrics_of(scores: dict, unpruned: float, scratch: float | None = None) -> dict:
    rows = [{"method": m, "depth": d, "kept": [], "before": s - 0.1, "after": s} for (m, d), s in scores.items()]
    return {
        "source": {"geneval": unpruned, "num_layers": 8},
        "variants": rows,
        "scratch": [] if scratch is None else [{"depth": 2, "score": scratch, "steps": 10}],
    }


def test_summary_checks_importance_vs_naive_the_gap_at_moderate_depth_and_scratch():
    scores = {
        ("importance", 6): 0.58,
        ("last", 6): 0.5,
        ("random", 6): 0.55,
        ("importance", 2): 0.40,
        ("last", 2): 0.42,
    }
    s = experiment.summarize(metrics_of(scores, unpruned=0.60, scratch=0.35))
    assert s["importance_vs_naive"]["after"][6]["margin"] == pytest.approx(0.03)
    assert s["importance_vs_naive"]["before"][6]["margin"] == pytest.approx(0.03)  # before = after - 0.1 here
    assert s["importance_beats_naive"] == {"before": False, "after": False}  # "last" wins at depth 2
    assert s["moderate_depth"] == 6 and s["gap_to_unpruned"] == pytest.approx(0.02) and s["within_target"]
    assert s["beats_scratch"] is True and s["scratch"][2]["margin"] == pytest.approx(0.05)
    assert experiment.summarize(metrics_of({("last", 6): 0.5}, 0.6))["within_target"] is None
    ties_then_wins = {("importance", 6): 0.5, ("last", 6): 0.5, ("importance", 2): 0.4, ("last", 2): 0.3}
    assert experiment.summarize(metrics_of(ties_then_wins, 0.6))["importance_beats_naive"]["after"] is True


def test_the_control_fine_tune_of_the_unpruned_model_is_scored_summarized_and_tabled(deep_pipeline_dir, tmp_path):
    cfg = quick(
        source=str(deep_pipeline_dir),
        work_dir=str(tmp_path / "work"),
        fractions=[1 / 2],
        methods=["importance"],
        calibration_limit=2,
        eval_prompt_limit=2,
        finetune={"steps": 1, "batch_size": 2},
        finetune_source=True,
        scratch_steps=-1,
    )
    metrics = experiment.run(cfg)
    tuned = metrics["source"]["finetuned"]
    assert 0 <= tuned["overall"] <= 1 and (tmp_path / "work/source-finetune/pipeline").is_dir()
    effect = metrics["summary"]["finetune_effect_on_unpruned"]
    assert effect == pytest.approx(tuned["overall"] - metrics["source"]["geneval"])
    assert f"| {tuned['overall']:.3f} | {effect:+.3f} |" in experiment.summary_table(metrics).splitlines()[2]
    assert experiment.summarize(metrics_of({("importance", 6): 0.5}, 0.6))["finetune_effect_on_unpruned"] is None


def test_claim_one_compares_methods_only_at_a_stage_where_both_were_scored():
    metrics = metrics_of({("importance", 6): 0.58, ("last", 6): 0.62}, unpruned=0.6)
    metrics["variants"][1]["after"] = None  # "last" pruned and scored, not fine-tuned: 0.52 before
    s = experiment.summarize(metrics)
    assert s["importance_vs_naive"]["before"][6]["margin"] == pytest.approx(0.48 - 0.52)
    assert s["importance_vs_naive"]["after"] == {} and s["importance_beats_naive"] == {"before": False, "after": None}
    assert s["gap_to_unpruned"] == pytest.approx(0.02)  # claim 2 still uses the fine-tuned importance score


def test_target_depths_and_compute_matched_steps():
    assert experiment.target_depths(24, (3 / 4, 1 / 2, 1 / 3)) == [18, 12, 8]
    assert experiment.target_depths(4, (3 / 4, 1 / 2, 1 / 3)) == [3, 2, 1]
    with pytest.raises(ValueError, match="cannot be pruned"):
        experiment.target_depths(1, (0.5,))
    # 24 blocks x 1000 images + 8 x 6400 fine-tune images, at 8 blocks x 64 per step
    assert experiment.compute_matched_steps(24 * 1000, 8, 6400, 64) == 147
    with pytest.raises(ValueError, match="unknown pruning methods"):
        experiment.PruningExperimentConfig(methods=("importance", "magnitude"))


def quick(**overrides):
    from lab.experiments import preset

    return preset(experiment.Config, "pruning", "quick", **overrides)


def test_a_given_scratch_model_must_have_the_compared_depth(deep_pipeline_dir, tmp_path):
    cfg = quick(scratch_model=str(deep_pipeline_dir))
    with pytest.raises(ValueError, match="has 4 blocks; the comparison needs 2"):
        experiment.run_scratch(deep_pipeline_dir, 2, tmp_path, cfg)


def test_only_the_chosen_methods_are_fine_tuned_and_a_rerun_reuses_finished_scores(
    deep_pipeline_dir, tmp_path, monkeypatch
):
    cfg = quick(
        fractions=[1 / 2],
        methods=["importance", "last"],
        finetune_methods=["importance"],
        eval_prompt_limit=2,
        finetune={"steps": 1, "batch_size": 2},
    )
    rows = experiment.run_variants(deep_pipeline_dir, table_of([0.1, 0.9, 0.2, 0.8]), tmp_path, cfg)
    by = {r["method"]: r for r in rows}
    assert by["importance"]["kept"] == [1, 3] and by["last"]["kept"] == [0, 1]
    assert by["importance"]["after"] is not None and by["last"]["after"] is None
    assert all(0 <= r["before"] <= 1 for r in rows)
    assert load_pipeline(by["importance"]["pipeline"]).transformer.config.num_layers == 2
    assert by["last"]["compute"] is None  # an untrained source: no known budget

    def no_scoring(*args, **kwargs):
        raise AssertionError("a finished score was computed again")

    monkeypatch.setattr("lab.evaluation.evaluate_pipeline", no_scoring)
    again = experiment.run_variants(deep_pipeline_dir, table_of([0.1, 0.9, 0.2, 0.8]), tmp_path, cfg)
    assert [(r["before"], r["after"]) for r in again] == [(r["before"], r["after"]) for r in rows]
    assert rows[0]["finetune_seconds"] > 0  # from the run's log, so a reused fine-tune reports its training time
    assert again[0]["finetune_seconds"] == pytest.approx(rows[0]["finetune_seconds"])
