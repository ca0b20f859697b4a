"""Run by `accelerate launch --num_processes 2` in test_scaling: a distributed best-of-N whose
every process must end with the same, complete result as a single process."""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from accelerate import PartialState

from lab.judge import JudgeScores
from lab.model import load_pipeline
from lab.sampling import SamplerConfig
from lab.scaling import best_of_n


class BrightnessJudge:
    """Scores an image by its mean brightness: distinct scores per candidate, so the ranking depends
    on which image sits at which index (the oracle on an untrained model says "no" to all alike)."""

    name = "brightness"

    def score(self, images, prompts) -> JudgeScores:
        yes = np.asarray(images, np.float32).mean(axis=(1, 2, 3)) / 255 * 8 - 4
        no = np.zeros_like(yes)
        return JudgeScores(1 / (1 + np.exp(no - yes)), yes, no)


def image_digests(images) -> list[str]:
    return [hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()[:12] for x in images]


def main(pipe_dir: str, out: str) -> None:
    result = best_of_n(
        load_pipeline(pipe_dir),
        "a photo of a circle",
        5,
        BrightnessJudge(),
        seed=3,
        sampler=SamplerConfig(steps=2, batch_size=2),
        distributed=True,
    )
    state = PartialState()  # the state best_of_n set up
    report = {
        "world_size": state.num_processes,
        "ranking": result.ranking,
        "judge_calls": result.judge_calls,
        "image_digests": image_digests(result.images),
        "n_images": len(result.images),
    }
    (Path(out) / f"rank{state.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:3])
