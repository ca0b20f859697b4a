"""Run by `accelerate launch --num_processes 2` in test_scaling: a distributed best-of-N whose
every process must end with the same, complete result as a single process."""

import json
import sys
from pathlib import Path

from accelerate import PartialState

from lab.judge import OracleJudge
from lab.model import load_pipeline
from lab.sampling import SamplerConfig
from lab.scaling import best_of_n


def main(pipe_dir: str, out: str) -> None:
    result = best_of_n(
        load_pipeline(pipe_dir),
        "a photo of a circle",
        5,
        OracleJudge(),
        seed=3,
        sampler=SamplerConfig(steps=2, batch_size=2),
        distributed=True,
    )
    state = PartialState()  # the state best_of_n set up
    report = {
        "world_size": state.num_processes,
        "ranking": result.ranking,
        "judge_calls": result.judge_calls,
        "images_sum": int(result.images.astype("int64").sum()),
        "n_images": len(result.images),
    }
    (Path(out) / f"rank{state.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:3])
