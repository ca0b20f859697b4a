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
from conftest import free_port

from lab.checkpoint import atomic_directory
from lab.model import load_pipeline
from lab.train import FlowConfig, TrainConfig, flow_matching_loss, sample_sigmas, train


def tiny_config(vae_dir, **kw):
    base = dict(size="tiny", vae=str(vae_dir), steps=4, batch_size=4, warmup_steps=1, checkpoint_every=2,
                ema_decay=0.9, text_max_length=16)
    return TrainConfig(**(base | kw))


def transformer_weights(run):
    return load_pipeline(Path(run) / "pipeline").transformer.state_dict()


def test_interrupted_and_resumed_run_gives_the_same_weights_as_an_uninterrupted_one(tiny_vae_dir, tmp_path, monkeypatch):
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
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "train", "--config", str(tmp_path / "cfg.yaml"),
                             "--out", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
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
    worker = Path(__file__).with_name("ddp_worker.py")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    # `accelerate launch --cpu` starts a single process in accelerate 1.x; `--multi_gpu` starts two
    # through torchrun, and the trainer's Accelerator(cpu=True) joins them over gloo on a CPU box.
    r = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", str(free_port()),
                        "--mixed_precision", "no", "--dynamo_backend", "no", str(worker), str(tiny_vae_dir), str(tmp_path)],
                       capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).parent.parent)
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
