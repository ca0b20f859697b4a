"""Benchmark: optimizer-state memory, CAME-8bit step speed, and 8-bit training fidelity.

    lab bench optim [--out reports/bench/optim.json] [--quick] [--threads N]

(a) memory and (c) fidelity are the CAME-8bit experiment's (`lab.experiments.came8bit`, the same
presets: `--quick` is its quick one); this benchmark adds
(b) speed: CAME8bit / CAME time per optimizer step and per full training step (the trainer's,
    `lab.train.training_step`) on the S transformer, the optimizers interleaved repetition by
    repetition, medians.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import replace

import torch

from lab.bench._timing import add_threads_argument, pin_threads
from lab.experiments import came8bit, preset
from lab.model import quiet_hub_logging
from lab.optim import OPTIMIZERS, build_optimizer
from lab.provenance import write_json

DEFAULT_OUT = "reports/bench/optim.json"


def measure_speed(cfg: came8bit.Came8bitConfig, names: tuple[str, ...] = OPTIMIZERS) -> dict:
    """Median seconds per optimizer step and per full step (forward + backward + step), interleaved."""
    base = came8bit.fresh_transformer(cfg.speed_size, cfg.train.seed)
    batches = came8bit.synthetic_batches(base, cfg)
    runs = {}
    for name in names:
        model = copy.deepcopy(base)
        runs[name] = (
            model,
            build_optimizer(name, model.parameters(), lr=cfg.train.lr),
            torch.Generator().manual_seed(cfg.train.seed),
        )
    times = {name: {"step": [], "full": []} for name in names}
    for rep in range(cfg.speed_reps + 1):  # repetition 0 creates the state: untimed
        for name in names:
            model, optimizer, generator = runs[name]
            start = time.perf_counter()
            result = came8bit.step(model, optimizer, batches[rep % len(batches)], generator, cfg)
            if rep > 0:
                times[name]["step"].append(result.optimizer_seconds)
                times[name]["full"].append(time.perf_counter() - start)
    median = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    ratio = {k: median["came8bit"][k] / median["came"][k] for k in ("step", "full")}
    return dict(
        model=cfg.speed_size,
        batch_size=cfg.train.batch_size,
        reps=cfg.speed_reps,
        median_seconds=median,
        came8bit_vs_came=ratio,
        target=cfg.speed_target,
        meets_target=ratio["step"] <= cfg.speed_target,
    )


def main(argv: list[str] | None = None) -> dict:
    from lab.config import config_dict

    parser = argparse.ArgumentParser(prog="lab bench optim", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"JSON output path (default {DEFAULT_OUT})")
    parser.add_argument("--quick", action="store_true", help="tiny model and fewer steps (about a minute)")
    add_threads_argument(parser, default=1)  # 1: steadier timings on a shared machine
    parser.add_argument("--steps", type=int, default=None, help="override the fidelity steps")
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    cfg = preset(came8bit.Came8bitConfig, "came8bit", "quick" if args.quick else "full")
    if args.steps is not None:
        cfg = replace(cfg, train=replace(cfg.train, steps=args.steps), tail=min(cfg.tail, args.steps))
    quiet_hub_logging()
    started = time.perf_counter()
    result = {"config": config_dict(cfg), "quick": args.quick}
    result["memory"] = memory = came8bit.measure_memory(cfg)
    print(came8bit.format_memory_table(memory))
    print(
        f"CAME8bit / AdamW on {memory['target_model']}: {memory['came8bit_vs_adamw'][memory['target_model']]:.4f} "
        f"(target <= {cfg.ratio_target}, limit {memory['theoretical_limit']:.4f})"
    )
    result["speed"] = speed = measure_speed(cfg)
    med = speed["median_seconds"]
    for name in OPTIMIZERS:
        print(f"speed {name:<10} step {med[name]['step'] * 1e3:8.1f} ms   full step {med[name]['full'] * 1e3:8.1f} ms")
    print(
        f"CAME8bit / CAME: step {speed['came8bit_vs_came']['step']:.3f}, full {speed['came8bit_vs_came']['full']:.3f} "
        f"(target <= {cfg.speed_target})"
    )
    result["fidelity"] = fidelity = came8bit.measure_fidelity(cfg)
    for name, loss in fidelity["tail_mean_loss"].items():
        print(
            f"fidelity {name:<10} mean loss of last {cfg.tail} of {cfg.train.steps} steps: {loss:.4f} "
            f"({fidelity['fraction_8bit'][name]:.0%} of params with 8-bit state)"
        )
    rel = fidelity["relative_difference"]
    print(
        f"CAME8bit vs CAME: {rel['came8bit_vs_came']:+.2%} (target within {cfg.fidelity_target:.0%}); "
        f"AdamW8bit vs AdamW: {rel['adamw8bit_vs_adamw']:+.2%}"
    )
    result["seconds"] = time.perf_counter() - started
    path = write_json(result, args.out)
    print(f"wrote {path} ({result['seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
