"""The experiment layer: every experiment in one shape (Config from its presets, run, figures), presets
that nest the library's configs, and the smaller experiments end to end on tiny settings."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lab.config import load_config
from lab.experiments import MODES, block_importance, came8bit, preset, pruning
from lab.provenance import repo_path
from lab.reproduce import REGISTRY
from lab.sampling import SamplerConfig
from lab.train import TrainConfig


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_experiment_builds_its_config_from_quick_and_full_presets_and_runs_and_draws(name):
    nb = REGISTRY[name]
    module = nb.experiment()
    assert nb.presets.is_file() and module.__name__ == f"lab.experiments.{name}"
    quick, full = (preset(module.Config, name, mode) for mode in MODES)
    assert isinstance(quick, module.Config) and quick != full
    assert callable(module.run) and callable(module.figures)
    assert module.METRICS_FILE == nb.metrics  # where the reports index reads it


def test_a_nested_preset_mapping_updates_that_fields_default_and_overrides_merge_into_it():
    recovery = load_config(TrainConfig, repo_path("configs/prune_finetune.yaml"))
    cfg = preset(pruning.Config, "pruning", "quick")
    assert cfg.finetune == replace(recovery, steps=2, batch_size=4)  # the rest is configs/prune_finetune.yaml's
    again = preset(pruning.Config, "pruning", "quick", finetune={"steps": 7, "lr": None}, eval_prompts=None)
    assert again.finetune == replace(recovery, steps=7, batch_size=4) and again.eval_prompts == "quick"
    assert again.fractions == (3 / 4, 1 / 2, 1 / 3)  # YAML lists become tuples, 1/3 exactly


def test_sampler_defaults_come_from_sampler_config_alone():
    cfg = block_importance.Config()
    assert cfg.sampler == SamplerConfig() and pruning.Config().sampler == SamplerConfig()


def test_presets_name_an_unknown_field_or_mode_and_what_is_accepted(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("quick: {sampler: {stepz: 3}}\nfull: {}\n")
    with pytest.raises(ValueError, match=r"bad.yaml:quick.sampler: unknown SamplerConfig fields \['stepz'\]; accepted"):
        preset(block_importance.Config, str(bad), "quick")
    with pytest.raises(ValueError, match="unknown mode 'slow'; expected one of"):
        preset(block_importance.Config, "block_importance", "slow")
    with pytest.raises(ValueError, match="no presets at"):
        preset(block_importance.Config, "no_such_experiment", "quick")


def test_came8bit_presets_keep_the_benchmarks_settings_and_train_with_a_constant_lr_unclipped():
    quick = preset(came8bit.Config, "came8bit", "quick")
    t = quick.train
    assert (t.size, t.steps, t.batch_size, t.lr, quick.tail, quick.min_8bit_size, quick.speed_reps) == (
        "tiny",
        60,
        8,
        1e-4,
        20,
        1024,
        3,
    )
    assert (t.warmup_steps, t.min_lr_ratio, t.grad_clip, t.caption_dropout) == (0, 1.0, 0.0, 0.0)
    full = preset(came8bit.Config, "came8bit", "full")
    assert (full.train.size, full.train.steps, full.tail, full.min_8bit_size, full.speed_reps) == (
        "S",
        300,
        50,
        None,
        20,
    )


def test_came8bit_run_writes_memory_and_fidelity_and_draws_them(tmp_path):
    cfg = preset(came8bit.Config, "came8bit", "quick", train={"steps": 3}, tail=2, meta_sizes=[], memory_size="tiny")
    metrics = came8bit.run(cfg, tmp_path, mode="quick")
    stored = json.loads((tmp_path / came8bit.METRICS_FILE).read_text())
    assert stored["mode"] == "quick" and set(stored["fidelity"]["curves"]) == {"adamw", "adamw8bit", "came", "came8bit"}
    assert all(len(c) == 3 for c in metrics["fidelity"]["curves"].values())
    assert {r["optimizer"] for r in metrics["memory"]["rows"]} == {"adamw", "adamw8bit", "came", "came8bit"}
    assert set(came8bit.figures(stored)) == {"memory", "loss_curves"}


def test_block_importance_run_falls_back_to_a_stand_in_only_when_allowed(tmp_path):
    cfg = preset(
        block_importance.Config,
        "block_importance",
        "quick",
        model=str(tmp_path / "no-L"),
        work_dir=str(tmp_path / "work"),
        prompt_limit=2,
        sampler={"steps": 2},
    )
    metrics = block_importance.run(cfg, tmp_path / "out", mode="quick")
    assert metrics["label"].startswith("untrained tiny stand-in") and len(metrics["importance"]["timesteps"]) == 2
    assert (tmp_path / "out" / block_importance.TABLE_FILE).is_file()
    assert set(block_importance.figures(metrics)) == {"importance_lines", "importance_heatmap"}
    with pytest.raises(FileNotFoundError, match="no trained pipeline at .*no-L.*lab grow"):
        block_importance.run(replace(cfg, stand_in=False))
