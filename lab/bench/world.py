"""`lab bench world`: how fast the shapes world makes training data, on one core.

Measures scenes/s of the whole stream (sample a prompt, sample a scene, render it; goal >= 2,000),
each stage alone, and `training_batch` images/s. Rates are given per wall-clock second and per
second of CPU time (one core's rate even when other jobs share the machine).
"""

from __future__ import annotations

import argparse

import numpy as np

from lab import world
from lab.bench._timing import time_calls

TARGET_SCENES_PER_S = 2000.0
BATCH_SIZE = 64  # for the training_batch measurement


def measure(n: int, seed: int = 0) -> dict:
    """Times the stream and its stages on `n` scenes. Returns a JSON-able dict."""
    rng = np.random.default_rng(seed)
    prompts = [world.sample_training_prompt(rng) for _ in range(n)]
    scenes = [world.sample_scene(p, seed + i) for i, p in enumerate(prompts)]
    rng = np.random.default_rng(seed)
    stream = time_calls(lambda i: world.render(world.sample_scene(world.sample_training_prompt(rng), seed + i)), n)
    rng = np.random.default_rng(seed)
    prompt_rate = time_calls(lambda i: world.sample_training_prompt(rng), n).calls_per_second
    scene_rate = time_calls(lambda i: world.sample_scene(prompts[i], seed + i), n).calls_per_second
    render_rate = time_calls(lambda i: world.render(scenes[i]), n).calls_per_second
    n_batches = max(n // BATCH_SIZE, 1)
    batch_rate = time_calls(lambda i: world.training_batch(seed + i, BATCH_SIZE), n_batches).calls_per_second
    return {
        "n_scenes": n,
        "seed": seed,
        "scenes_per_s": stream.calls_per_second,
        "scenes_per_cpu_s": stream.calls_per_cpu_second,
        "stages_per_s": {"sample_training_prompt": prompt_rate, "sample_scene": scene_rate, "render": render_rate},
        "training_batch_images_per_s": batch_rate * BATCH_SIZE,
        "target_scenes_per_s": TARGET_SCENES_PER_S,
        "meets_target": stream.calls_per_cpu_second >= TARGET_SCENES_PER_S,  # judged on CPU time: the machine is shared
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lab bench world", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/bench/world.json", help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="1,000 scenes instead of 10,000")
    parser.add_argument("--n", type=int, default=None, help="number of scenes (overrides --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = args.n or (1000 if args.quick else 10000)
    import torch

    torch.set_num_threads(1)  # one core; the world uses numpy only, on arrays too small for threads
    result = measure(n, args.seed)
    from lab.provenance import write_json

    path = write_json({"benchmark": "world", **result}, args.out)
    print(
        f"{n} scenes: {result['scenes_per_s']:.0f} scenes/s ({result['scenes_per_cpu_s']:.0f} per CPU-s; "
        f"target {TARGET_SCENES_PER_S:.0f}) -> {path}"
    )
    return result
