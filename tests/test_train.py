"""The trainer: exact resume, atomic checkpoints, logs, Ctrl-C, and real 2-process DDP."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import launch_two_processes

from lab.checkpoint import atomic_directory
from lab.model import load_pipeline
from lab.train import FlowConfig, TrainConfig, flow_matching_loss, sample_sigmas, train


def tiny_config(vae_dir, **kw):
    base = dict(
        size="tiny",
        vae=str(vae_dir),
        steps=4,
        batch_size=4,
        warmup_steps=1,
        checkpoint_every=2,
        ema_decay=0.9,
        text_max_length=16,
    )
    return TrainConfig(**(base | kw))


def transformer_weights(run):
    return load_pipeline(Path(run) / "pipeline").transformer.state_dict()


def test_interrupted_and_resumed_run_gives_the_same_weights_as_an_uninterrupted_one(
    tiny_vae_dir, tmp_path, monkeypatch
):
    cfg = tiny_config(tiny_vae_dir)
    train(cfg, tmp_path / "straight", progress=False)

    from lab import world

    class Crash(Exception):
        pass

    real_batch = world.training_batch
    calls = []

    def crash_at_step_3(seed, batch_size, *args):
        calls.append(seed)
        if len(calls) == 3:  # the checkpoint of step 2 is on disk; step 3 dies mid-way
            raise Crash
        return real_batch(seed, batch_size, *args)

    monkeypatch.setattr(world, "training_batch", crash_at_step_3)
    with pytest.raises(Crash):
        train(cfg, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(world, "training_batch", real_batch)
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2
    train(cfg, tmp_path / "resumed", progress=False)
    a, b = transformer_weights(tmp_path / "straight"), transformer_weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rendering_in_worker_processes_gives_the_same_weights_as_rendering_inline(tiny_vae_dir, tmp_path):
    train(tiny_config(tiny_vae_dir, data_workers=0), tmp_path / "inline", progress=False)
    train(tiny_config(tiny_vae_dir, data_workers=2), tmp_path / "workers", progress=False)
    a, b = transformer_weights(tmp_path / "inline"), transformer_weights(tmp_path / "workers")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_log_has_one_line_per_step_with_loss_lr_speed_and_memory(tiny_vae_dir, tmp_path):
    train(tiny_config(tiny_vae_dir), tmp_path, progress=False)
    lines = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4]
    for r in lines:
        assert {"loss", "lr", "images_per_s", "peak_mem_mb", "grad_norm"} <= set(r)
        assert r["loss"] > 0 and r["images_per_s"] > 0
    assert (tmp_path / "train_config.yaml").is_file()


def test_atomic_directory_keeps_the_previous_contents_when_writing_fails(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("disk full")
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_sigmas_follow_the_shifted_logit_normal():
    g = torch.Generator().manual_seed(0)
    s1 = sample_sigmas(20000, FlowConfig(), g)
    s3 = sample_sigmas(20000, FlowConfig(flow_shift=3.0), torch.Generator().manual_seed(0))
    assert 0 < s1.min() and s1.max() < 1
    assert abs(s1.median().item() - 0.5) < 0.02  # logit-normal(0, 1) is symmetric about 1/2
    assert abs(s3.median().item() - 0.75) < 0.02  # shift 3 maps 1/2 to 3/4


def test_flow_matching_loss_is_zero_for_a_perfect_velocity_predictor():
    class Oracle(torch.nn.Module):
        # knows x0 = 0 latents, so x_t = s noise and the velocity noise - x0 = x_t / s
        def forward(self, x, encoder_hidden_states, encoder_attention_mask, timestep, return_dict):
            return (x / (timestep / 1000).view(-1, 1, 1, 1),)

    loss = flow_matching_loss(Oracle(), torch.zeros(4, 2, 3, 3), None, None, torch.Generator().manual_seed(0))
    assert loss.item() < 1e-10


@pytest.mark.parametrize("workers", [0, 2])
def test_ctrl_c_saves_a_checkpoint_at_a_step_boundary(tiny_vae_dir, tmp_path, workers):
    cfg = tiny_config(tiny_vae_dir, steps=10_000, checkpoint_every=10_000, data_workers=workers)
    (tmp_path / "cfg.yaml").write_text(json.dumps({k: v for k, v in cfg.__dict__.items()}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.cli",
            "train",
            "--config",
            str(tmp_path / "cfg.yaml"),
            "--out",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    log = tmp_path / "run" / "train_log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the trainer and its render workers
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "checkpoint saved" in err
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["step"] == len(log.read_text().splitlines())


def test_two_process_ddp_keeps_ranks_in_agreement(tiny_vae_dir, tmp_path):
    r = launch_two_processes("ddp_worker.py", str(tiny_vae_dir), str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    digests = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert digests[0]["world_size"] == digests[1]["world_size"] == 2
    assert digests[0]["checksum"] == digests[1]["checksum"]
    assert digests[0]["checksum"] != digests[0]["initial_checksum"], "training changed nothing"


@pytest.mark.parametrize("optimizer", ["came", "came8bit", "adamw8bit"])
def test_trainer_runs_and_resumes_with_every_optimizer(tiny_vae_dir, tmp_path, optimizer):
    # constant lr after warm-up, so a 2-step run is the first half of the 4-step one
    cfg = tiny_config(tiny_vae_dir, optimizer=optimizer, lr=1e-3, ema_decay=0.0, min_lr_ratio=1.0)
    train(cfg, tmp_path / "straight", progress=False)
    train(replace(cfg, steps=2), tmp_path / "resumed", progress=False)
    # the checkpoint of step 2 carries the optimizer's state: resuming to step 4 matches exactly
    train(cfg, tmp_path / "resumed", progress=False)
    a, b = transformer_weights(tmp_path / "straight"), transformer_weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resuming_another_runs_checkpoint_is_refused_but_a_longer_run_resumes(tiny_vae_dir, tmp_path):
    cfg = tiny_config(tiny_vae_dir, steps=2, lr=1e-3)
    train(cfg, tmp_path / "run", progress=False)
    state = tmp_path / "run" / "checkpoint" / "state.json"
    before = state.read_text()
    with pytest.raises(ValueError, match=r"checkpoint of another run \(lr: 0.001 there, 0.002 now\)"):
        train(replace(cfg, lr=2e-3), tmp_path / "run", progress=False)
    assert state.read_text() == before
    train(replace(cfg, steps=3, checkpoint_every=1), tmp_path / "run", progress=False)
    assert json.loads(state.read_text())["step"] == 3


# ----------------------------------------------------------------------------------------------
# new_block_lr_scale: the blocks growth added at a multiple of the lr


@pytest.fixture
def grown_dir(tiny_pipeline_dir, tmp_path):
    """tiny (2 blocks) grown to 3 by partial preservation: block 0 kept, blocks 1 and 2 added."""
    from lab.growth import grow_pipeline_dir

    return grow_pipeline_dir(tiny_pipeline_dir, tmp_path / "grown", 3)


def grown_config(grown_dir, **kw):
    base = dict(init_from=str(grown_dir), steps=3, batch_size=2, warmup_steps=1, checkpoint_every=2, ema_decay=0.0)
    return TrainConfig(**(base | kw))


@pytest.mark.parametrize("optimizer", ["adamw", "came"])
def test_new_blocks_at_lr_scale_0_stay_as_grown_while_kept_blocks_train(grown_dir, tmp_path, optimizer):
    train(grown_config(grown_dir, optimizer=optimizer, new_block_lr_scale=0.0), tmp_path / "run", progress=False)
    before = load_pipeline(grown_dir).transformer.state_dict()
    after = transformer_weights(tmp_path / "run")
    added = [k for k in before if k.startswith(("transformer_blocks.1.", "transformer_blocks.2."))]
    kept = [k for k in before if k.startswith("transformer_blocks.0.")]
    assert added and all(torch.equal(before[k], after[k]) for k in added)
    assert any(not torch.equal(before[k], after[k]) for k in kept)


@pytest.mark.parametrize("optimizer", ["adamw", "came8bit"])
def test_both_lr_groups_follow_the_schedule_and_resume_exactly(grown_dir, tmp_path, optimizer):
    from lab.schedule import lr_at

    cfg = grown_config(grown_dir, steps=4, new_block_lr_scale=3.0, lr=1e-3, optimizer=optimizer)
    train(cfg, tmp_path / "straight", progress=False)
    train(replace(cfg, steps=2), tmp_path / "resumed", progress=False)
    groups = torch.load(tmp_path / "resumed" / "checkpoint" / "optimizer.pt", weights_only=False)["param_groups"]
    assert [g["lr"] for g in groups] == [lr_at(1, cfg), 3.0 * lr_at(1, cfg)]  # as set for the last step, 2
    train(cfg, tmp_path / "resumed", progress=False)
    a, b = transformer_weights(tmp_path / "straight"), transformer_weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lr_scale_1_builds_the_one_group_of_before(grown_dir):
    from lab.train import optimizer_params

    params = list(load_pipeline(grown_dir).transformer.parameters())
    assert optimizer_params(grown_config(grown_dir), None, params) is params


def test_new_block_lr_scale_and_position_embedding_are_refused_where_they_cannot_apply(
    tiny_vae_dir, tiny_pipeline_dir, tmp_path
):
    with pytest.raises(ValueError, match="new_block_lr_scale=0.5 needs init_from .*init_from is empty"):
        train(tiny_config(tiny_vae_dir, new_block_lr_scale=0.5), tmp_path / "fresh", progress=False)
    with pytest.raises(ValueError, match=r"new_block_lr_scale=0.5 needs init_from .* has no growth\.json"):
        train(grown_config(tiny_pipeline_dir, new_block_lr_scale=0.5), tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match="new_block_lr_scale=-1.0 is invalid; expected a finite number >= 0"):
        TrainConfig(new_block_lr_scale=-1.0)
    with pytest.raises(ValueError, match="position_embedding='rope' is unknown"):
        TrainConfig(position_embedding="rope")
    with pytest.raises(ValueError, match="position_embedding='sincos' applies to a fresh model, but init_from"):
        TrainConfig(init_from="checkpoints/S", position_embedding="sincos")
    assert not any(tmp_path.iterdir())  # refused before anything was written


# ----------------------------------------------------------------------------------------------
# One training step, shared with the benchmarks; callbacks


def test_callbacks_fire_at_their_steps_and_change_nothing_and_a_resumed_run_evaluates_the_same_weights(
    tiny_vae_dir, tmp_path, monkeypatch
):
    from lab import world
    from lab.train import TrainCallbacks

    cfg = tiny_config(tiny_vae_dir, steps=5)  # checkpoints at 2, 4 and the end

    def watch(seen):
        def evaluate(step, pipe):
            assert not pipe.transformer.training  # evaluated in eval mode
            seen["evaluate"][step] = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}

        return TrainCallbacks(
            on_step=lambda step, rec: seen["step"].append((step, rec["step"])),
            on_checkpoint=lambda step, path: seen["checkpoint"].append((step, path.name)),
            evaluate=evaluate,
            evaluate_every=2,
        )

    hooked = {"step": [], "checkpoint": [], "evaluate": {}}
    train(cfg, tmp_path / "hooked", progress=False, callbacks=watch(hooked))
    assert hooked["step"] == [(s, s) for s in range(1, 6)]
    assert hooked["checkpoint"] == [(2, "checkpoint"), (4, "checkpoint"), (5, "checkpoint")]
    assert sorted(hooked["evaluate"]) == [2, 4, 5]  # every 2 steps and after the last
    train(cfg, tmp_path / "plain", progress=False)
    plain = transformer_weights(tmp_path / "plain")
    assert all(torch.equal(plain[k], transformer_weights(tmp_path / "hooked")[k]) for k in plain)
    assert all(torch.equal(plain[k], hooked["evaluate"][5][k]) for k in plain)  # the EMA weights it saves

    real_batch, calls = world.training_batch, []

    def crash_at_step_3(seed, batch_size, *args):
        calls.append(seed)
        if len(calls) == 3:
            raise RuntimeError("crash")
        return real_batch(seed, batch_size, *args)

    monkeypatch.setattr(world, "training_batch", crash_at_step_3)
    first = {"step": [], "checkpoint": [], "evaluate": {}}
    with pytest.raises(RuntimeError, match="crash"):
        train(cfg, tmp_path / "resumed", progress=False, callbacks=watch(first))
    monkeypatch.setattr(world, "training_batch", real_batch)
    second = {"step": [], "checkpoint": [], "evaluate": {}}
    train(cfg, tmp_path / "resumed", progress=False, callbacks=watch(second))
    assert [s for s, _ in first["step"]] == [1, 2] and sorted(first["evaluate"]) == [2]
    assert [s for s, _ in second["step"]] == [3, 4, 5] and sorted(second["evaluate"]) == [4, 5]
    for step in (4, 5):
        assert all(torch.equal(hooked["evaluate"][step][k], second["evaluate"][step][k]) for k in plain)


def test_callbacks_refuse_an_evaluation_without_a_cadence():
    from lab.train import TrainCallbacks

    with pytest.raises(ValueError, match="evaluate_every=0"):
        TrainCallbacks(evaluate=lambda step, pipe: None)
    with pytest.raises(ValueError, match="evaluate_every=3 with evaluate=None"):
        TrainCallbacks(evaluate_every=3)


def test_training_step_clips_only_when_asked_and_drops_captions_only_from_prompts():
    from lab.model import build_transformer
    from lab.train import drop_captions, training_step

    torch.manual_seed(0)
    model = build_transformer("tiny")
    c = model.config
    latents = torch.randn(2, c.in_channels, c.sample_size, c.sample_size)
    text = (torch.randn(2, 4, c.caption_channels), torch.ones(2, 4, dtype=torch.long))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    assert training_step(model, opt, latents, text, torch.Generator().manual_seed(0)).grad_norm is None
    clipped = training_step(model, opt, latents, text, torch.Generator().manual_seed(0), grad_clip=1e-3)
    assert clipped.grad_norm > 1e-3  # the norm before clipping ...
    after = torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]).norm()
    assert after == pytest.approx(1e-3, rel=1e-4)  # ... and the gradient the optimizer saw
    with pytest.raises(ValueError, match="caption_dropout=0.1 needs the prompts"):
        training_step(model, opt, latents, text, torch.Generator(), caption_dropout=0.1)
    g = torch.Generator().manual_seed(0)
    assert drop_captions(["a", "b"], 0.0, g) == ["a", "b"] and torch.equal(
        g.get_state(), torch.Generator().manual_seed(0).get_state()
    )
    assert drop_captions(["a"] * 1000, 0.1, g).count("") in range(60, 140)


def test_benchmarks_and_the_came8bit_experiment_train_with_the_trainers_step():
    import lab.bench.train as bench_train
    from lab.experiments import came8bit
    from lab.train import training_step

    assert (
        bench_train.training_step is training_step and came8bit.training_step is training_step
    )  # bench optim: came8bit.step
