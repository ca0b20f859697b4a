"""Run by `accelerate launch --num_processes 2` in test_train: each rank trains and reports a
checksum of its transformer weights (DDP must keep them identical)."""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState

from lab.train import TrainConfig, train


def checksum(module) -> float:
    return float(sum(p.double().sum() * (i + 1) for i, p in enumerate(module.parameters())))


def main(vae_dir: str, out: str) -> None:
    import lab.train as lab_train

    seen = {}
    real = lab_train.build_pipeline

    def spy(*args, **kwargs):  # capture this rank's transformer to checksum it after training
        pipe = real(*args, **kwargs)
        seen["transformer"] = pipe.transformer
        seen["initial"] = checksum(pipe.transformer)
        return pipe

    lab_train.build_pipeline = spy
    cfg = TrainConfig(size="tiny", vae=vae_dir, steps=3, batch_size=4, warmup_steps=1, checkpoint_every=100)
    train(cfg, Path(out) / "run", progress=False)
    state = PartialState()  # the state train()'s Accelerator set up
    with torch.no_grad():
        report = {
            "world_size": state.num_processes,
            "checksum": checksum(seen["transformer"]),
            "initial_checksum": seen["initial"],
        }
    (Path(out) / f"rank{state.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:3])
