"""What a new user types: every bad argument is one line naming it (exit 2) before anything loads,
failures are one line (exit 1), outputs are never half-written or mixed, paths work from anywhere."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lab import cli, geneval, world, zoo
from lab.provenance import REPO_ROOT


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fails the test if a command gets as far as loading a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(zoo, "resolve_model", refuse)


def _one_line_error(err: str, command: str) -> str:
    assert err.count("\n") == 1 and err.startswith(f"lab {command}: error: "), err
    return err


@pytest.mark.parametrize(
    "argv, named",
    [
        (["generate", "--prompt", ""], "argument --prompt: empty prompt"),
        (["generate", "--prompt", "a circle", "--n", "0"], "argument --n: 0 is out of range; expected an integer >= 1"),
        (["generate", "--prompt", "a circle", "--n", "-3"], "argument --n: -3 is out of range"),
        (["generate", "--prompt", "a circle", "--steps", "0"], "argument --steps: 0 is out of range"),
        (
            ["generate", "--prompt", "a circle", "--cfg", "-1"],
            "argument --cfg: -1 is out of range; expected a number >= 0",
        ),
        (["generate", "--prompt", "a circle", "-o", "grid.nosuchformat"], "argument -o/--out: cannot write a figure"),
        (["evaluate", "--prompts", "nosuch"], "argument --prompts: no prompt set 'nosuch'; expected one of"),
        (["evaluate", "--images-per-prompt", "0"], "argument --images-per-prompt: 0 is out of range"),
        (["evaluate", "--batch-size", "0"], "argument --batch-size: 0 is out of range"),
    ],
)
def test_bad_arguments_are_one_line_naming_the_argument_before_any_model_loads(
    argv, named, tiny_pipeline_dir, run_lab, no_model_loading
):
    code, _, err = run_lab(*argv, "--model", tiny_pipeline_dir)
    assert code == 2 and named in _one_line_error(err, argv[0])


def test_a_model_path_that_does_not_exist_says_so(run_lab, tmp_path):
    code, _, err = run_lab("generate", "--model", tmp_path / "nosuch", "--prompt", "a circle")
    assert code == 2 and "does not exist" in _one_line_error(err, "generate") and "shipped name" in err


def test_a_folder_that_is_not_a_pipeline_is_named(run_lab, tmp_path):
    code, _, err = run_lab("evaluate", "--model", tmp_path)
    assert code == 2 and "no model_index.json" in _one_line_error(err, "evaluate")


@pytest.fixture
def truncated_pipeline_dir(tiny_pipeline_dir, tmp_path):
    path = shutil.copytree(tiny_pipeline_dir, tmp_path / "truncated")
    weights = path / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return path


def test_a_truncated_safetensors_file_is_one_line_and_exit_1(truncated_pipeline_dir, run_lab):
    code, _, err = run_lab("generate", "--model", truncated_pipeline_dir, "--prompt", "a circle", "--n", 1)
    assert code == 1 and "could not load the pipeline" in _one_line_error(err, "generate")


def test_debug_shows_the_traceback(truncated_pipeline_dir):
    with pytest.raises(ValueError, match="could not load the pipeline"):
        cli.main(["generate", "--model", str(truncated_pipeline_dir), "--prompt", "a circle", "--debug"])


def test_generate_creates_the_missing_folder_of_its_output(tiny_pipeline_dir, run_lab, tmp_path):
    out = tmp_path / "missing_dir" / "grid.png"
    code, stdout, err = run_lab(
        "generate", "--model", tiny_pipeline_dir, "--prompt", "a photo of a circle", "--n", 1, "--steps", 1, "-o", out
    )
    assert code == 0 and out.is_file() and "denoise" in err  # a bar over denoising steps


def test_generate_warns_once_in_one_line_about_a_prompt_outside_training(tiny_pipeline_dir, run_lab, tmp_path):
    code, _, err = run_lab(
        "generate",
        "--model",
        tiny_pipeline_dir,
        "--prompt",
        "two red dogs",
        "--n",
        1,
        "--steps",
        1,
        "-o",
        tmp_path / "g.png",
    )
    warnings = [line for line in err.splitlines() if line.startswith("lab generate: warning:")]
    assert code == 0 and len(warnings) == 2  # unknown word 'dogs', and the prompt outside training
    assert "'two red dogs'" in warnings[1] and "outside what lab models were trained on" in warnings[1]


def test_world_render_draws_the_readme_example_from_any_working_directory(run_lab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run_lab(
        "world", "render", "--prompt", "a photo of a red circle left of a blue square", "--n", 2, "-o", "figs/grid.png"
    )
    assert code == 0 and (tmp_path / "figs" / "grid.png").is_file()


def test_world_render_names_the_grammar_for_a_prompt_outside_it(run_lab):
    code, _, err = run_lab("world", "render", "--prompt", "a photo of circle red")
    assert code == 2 and "fits none of the world's forms" in _one_line_error(err, "world render")


def test_geneval_evaluate_refuses_samples_made_for_another_prompt_set(run_lab, tmp_path):
    quick = world.load_prompts("quick")
    images = np.stack([world.render_prompt(quick[i], seed=i) for i in range(3)])
    samples = geneval.save_samples(images, [0, 1, 2], tmp_path / "s.npz", prompt_set="quick")
    code, _, err = run_lab("geneval", "evaluate", samples, "--prompts", "full")
    assert code == 2 and "made for the prompt set 'quick'" in _one_line_error(err, "geneval evaluate")
    assert "--prompts quick" in err and not (tmp_path / "s.geneval.json").exists()
    code, stdout, _ = run_lab("geneval", "evaluate", samples, "--prompts", "quick")
    assert code == 0 and (tmp_path / "s.geneval.json").is_file()


# --- outputs: never mixed, replaced only on success -------------------------------------------------


def _leftovers(parent) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_prune_refuses_another_runs_folder_unless_overwrite(tiny_pipeline_dir, run_lab, tmp_path):
    out = tmp_path / "pruned-run"
    assert run_lab("prune", "--model", tiny_pipeline_dir, "--depth", 1, "--by", "last", "--out", out)[0] == 0
    before = (out / "pruned" / "pruning.json").read_text()
    code, _, err = run_lab(
        "prune", "--model", tiny_pipeline_dir, "--depth", 1, "--by", "random", "--seed", 1, "--out", out
    )
    assert code == 2 and "--overwrite" in _one_line_error(err, "prune") and "by: 'last' there, 'random' now" in err
    assert (out / "pruned" / "pruning.json").read_text() == before and not _leftovers(tmp_path)
    code, _, _ = run_lab(
        "prune", "--model", tiny_pipeline_dir, "--depth", 1, "--by", "random", "--seed", 1, "--out", out, "--overwrite"
    )
    assert code == 0 and json.loads((out / "run.json").read_text())["by"] == "random" and not _leftovers(tmp_path)


def test_prune_into_a_folder_of_other_files_leaves_them_untouched(tiny_pipeline_dir, run_lab, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_lab("prune", "--model", tiny_pipeline_dir, "--depth", 1, "--by", "last", "--out", tmp_path)
    assert code == 2 and "no lab run" in err and (tmp_path / "notes.txt").read_text() == "mine"


def test_grow_refuses_another_runs_folder_unless_overwrite(tiny_pipeline_dir, run_lab, tmp_path):
    out = tmp_path / "grown"
    assert run_lab("grow", "--model", tiny_pipeline_dir, "--num-layers", 3, "--out", out)[0] == 0
    assert (
        run_lab("grow", "--model", tiny_pipeline_dir, "--num-layers", 3, "--out", out)[0] == 0
    )  # the same run: redone
    code, _, err = run_lab("grow", "--model", tiny_pipeline_dir, "--num-layers", 4, "--out", out)
    assert code == 2 and "num_layers: 3 there, 4 now" in _one_line_error(err, "grow")
    assert run_lab("grow", "--model", tiny_pipeline_dir, "--num-layers", 4, "--out", out, "--overwrite")[0] == 0
    assert json.loads((out / "transformer" / "config.json").read_text())["num_layers"] == 4 and not _leftovers(tmp_path)


def test_train_refuses_a_run_folder_of_another_config_before_training(run_lab, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_config.yaml").write_text("lr: 0.5\n")
    code, _, err = run_lab("train", "--config", "configs/S.yaml", "--out", out, "--steps", 1)
    assert code == 2 and "--overwrite" in _one_line_error(err, "train") and not (out / "checkpoint").exists()


def test_train_resumes_a_run_recorded_before_a_config_field_existed_and_refuses_a_real_difference(
    tiny_vae_dir, run_lab, tmp_path, monkeypatch
):
    import yaml

    import lab.train

    config = tmp_path / "tiny.yaml"
    fields = dict(size="tiny", vae=str(tiny_vae_dir), batch_size=2, warmup_steps=1, checkpoint_every=1, ema_decay=0.0)
    config.write_text(yaml.safe_dump(fields))
    out = tmp_path / "run"
    assert run_lab("train", "--config", config, "--out", out, "--steps", 1)[0] == 0
    recorded = yaml.safe_load((out / "train_config.yaml").read_text())
    # as an older lab wrote it: without the fields TrainConfig gained since (they ran at their defaults)
    older = {k: v for k, v in recorded.items() if k not in ("new_block_lr_scale", "task_weights", "data_workers")}
    (out / "train_config.yaml").write_text(yaml.safe_dump(older, sort_keys=False))

    resumed = []
    real_train = lab.train.train
    monkeypatch.setattr(
        lab.train, "train", lambda cfg, o, resume=True: resumed.append(resume) or real_train(cfg, o, resume)
    )
    assert run_lab("train", "--config", config, "--out", out, "--steps", 2)[0] == 0
    assert resumed == [True] and [json.loads(line)["step"] for line in open(out / "train_log.jsonl")] == [1, 2]
    # how often it saves is not what the run is: the CLI agrees with the trainer (lab.train.RESUME_MAY_CHANGE)
    (out / "train_config.yaml").write_text(yaml.safe_dump({**older, "checkpoint_every": 5, "data_workers": 0}))
    assert run_lab("train", "--config", config, "--out", out, "--steps", 3)[0] == 0 and resumed == [True, True]

    for record, named in [
        ({**older, "lr": 0.5}, "lr: 0.5 there"),
        ({**older, "nosuch": 1}, "nosuch: 1 there, None now"),
    ]:
        (out / "train_config.yaml").write_text(yaml.safe_dump(record))
        code, _, err = run_lab("train", "--config", config, "--out", out, "--steps", 4)
        assert code == 2 and named in _one_line_error(err, "train") and resumed == [True, True]


# --- paths and names ---------------------------------------------------------------------------------


def test_shipped_configs_and_models_resolve_from_any_working_directory(tmp_path, monkeypatch, tiny_pipeline_dir):
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["prune", "--model", "L", "--depth", "12", "--out", "o"])
    assert args.finetune_config == REPO_ROOT / "configs" / "prune_finetune.yaml"
    assert zoo.model_path("S") == zoo.model_path("checkpoints/S") == REPO_ROOT / "checkpoints" / "S"
    assert zoo.model_spec("L@12") == zoo.ModelSpec(REPO_ROOT / "checkpoints" / "L", 12)
    assert zoo.model_path(tiny_pipeline_dir) == tiny_pipeline_dir  # a path as given wins


def test_a_shipped_model_loads_pruned_by_name():
    pipe = zoo.resolve_model("L@12")
    assert pipe.transformer.config.num_layers == len(pipe.transformer.transformer_blocks) == 12


@pytest.mark.parametrize(
    "spec, message",
    [
        ("L@40", "expected an integer from 1 to 23"),
        ("S@4", "no importance.json"),
        ("checkpoints/vae", "no model_index.json"),
    ],
)
def test_bad_model_specs_name_what_is_accepted(spec, message):
    with pytest.raises(ValueError, match=message):
        zoo.model_spec(spec)


def test_snapshot_writes_the_runs_checkpoint_as_a_pipeline_with_its_frozen_encoder_and_refreshes_itself(
    tiny_vae_dir, run_lab, tmp_path
):
    import torch
    import yaml

    from lab.model import load_pipeline

    config = tmp_path / "tiny.yaml"
    fields = dict(size="tiny", vae=str(tiny_vae_dir), batch_size=2, warmup_steps=1, checkpoint_every=1)
    config.write_text(yaml.safe_dump({**fields, "ema_decay": 0.9, "train_text_encoder": False}))
    run, snap = tmp_path / "run", tmp_path / "snap"
    assert run_lab("snapshot", run, "--out", snap)[0] == 2  # no run there yet
    assert run_lab("train", "--config", config, "--out", run, "--steps", 2)[0] == 0
    code, out, _ = run_lab("snapshot", run, "--out", snap)
    assert code == 0 and "at step 2 (EMA weights)" in out
    finished = load_pipeline(run / "pipeline")  # the trainer's own export of the same EMA weights
    snapshot = load_pipeline(snap)
    for a, b in [(finished.transformer, snapshot.transformer), (finished.text_encoder, snapshot.text_encoder)]:
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert json.loads((snap / "snapshot.json").read_text())["step"] == 2
    assert run_lab("train", "--config", config, "--out", run, "--steps", 3)[0] == 0
    assert run_lab("snapshot", run, "--out", snap)[0] == 0  # the same run's newer step replaces it
    assert json.loads((snap / "snapshot.json").read_text())["step"] == 3
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = run_lab("snapshot", run, "--out", other)
    assert code == 2 and "--overwrite" in _one_line_error(err, "snapshot") and (other / "notes.txt").is_file()


def test_geneval_compare_pairs_two_reports_and_refuses_different_seeds(run_lab, tmp_path):
    prompts = [world.parse_prompt(t) for t in ("a photo of a circle", "a photo of two squares", "a photo of a cross")]
    renders = [world.render_prompt(p, 0) for p in prompts]
    blank = np.full_like(renders[0], 255)
    paths = {}
    for name, images in (("good", renders), ("bad", [renders[0], blank, blank])):
        report = geneval.evaluate(images, prompts)
        report.prompt_indices, report.seeds = [0, 1, 2], [7, 8, 9]
        paths[name] = geneval.write_report(report, tmp_path / f"{name}.json")
    code, out, _ = run_lab("geneval", "compare", paths["good"], paths["bad"], "--out", tmp_path / "diff.json")
    saved = json.loads((tmp_path / "diff.json").read_text())
    assert code == 0 and "3 images paired" in out
    assert saved["a_minus_b"]["task"] == {
        "single_object": 0.5,
        "counting": 1.0,
    }  # per task: 1 of 2 crosses, the squares
    report.seeds = [7, 8, 10]
    geneval.write_report(report, tmp_path / "other.json")
    code, _, err = run_lab("geneval", "compare", paths["good"], tmp_path / "other.json")
    assert code == 2 and "seed 9 vs 10" in _one_line_error(err, "geneval compare")


def test_train_judge_set_overrides_config_fields_and_names_a_bad_one(run_lab, tmp_path, monkeypatch):
    from lab import judge_train

    seen = []

    def fake_train(cfg, out):
        seen.append(cfg)
        return {"overall": {"balanced_accuracy": 0.5, "auc": 0.5}}

    monkeypatch.setattr(judge_train, "train_judge", fake_train)
    args = ("train-judge", "--out", tmp_path / "judge")
    code, _, _ = run_lab(*args, "--set", "vision_generated_fraction=0.5", "--set", "sample_models=[S, L]")
    assert code == 0 and seen[0].vision_generated_fraction == 0.5 and seen[0].sample_models == ("S", "L")
    assert seen[0].steps == 8000  # the rest from configs/judge.yaml
    code, _, err = run_lab(*args, "--set", "vision_generated_fraction")
    assert code == 2 and "is not FIELD=VALUE" in _one_line_error(err, "train-judge")
    code, _, err = run_lab(*args, "--set", "nosuch=1")
    assert code == 2 and "unknown JudgeTrainConfig fields ['nosuch']; accepted:" in _one_line_error(err, "train-judge")
    code, _, err = run_lab(*args, "--set", "vision_generated_fraction=2")
    assert code == 2 and "must be in [0, 1]" in err
