"""`lab bench importance`: the cost of one block-importance analysis (`lab.pruning.block_importance`).

1. The default analysis of the model (L: the quick calibration set, 20 timesteps): seconds.
2. Linearity: the analysis on a grid of (prompt batches x timesteps); seconds per
   (batch, timestep) should be flat and a line through the grid should fit it (goal: R^2 >= 0.99).
3. Overhead: seconds per (batch, timestep) vs one plain transformer forward on the same batch
   (CFG doubles it), without hooks (goal: ratio <= 1.5: one forward per (batch, timestep), never
   one per block).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from lab import world
from lab.bench._timing import time_calls
from lab.model import build_pipeline, build_vae, load_pipeline, text_max_length
from lab.provenance import write_json
from lab.pruning import block_importance
from lab.sampling import SamplerConfig, native_resolution

QUICK_SIZE = "tiny-6"  # quick mode's untrained stand-in for L (lab.model.SIZES)
LINEARITY_GOAL = 0.99  # R^2 of seconds vs (batches x timesteps)
OVERHEAD_GOAL = 1.5  # analysis seconds per (batch, timestep) / one plain forward


@torch.no_grad()
def plain_forward_seconds(pipe, batch: int, repeats: int) -> float:
    """Median seconds of one transformer forward on a CFG batch of `batch` prompts (2 x batch rows)."""
    t = pipe.transformer
    c = t.config
    side = native_resolution(pipe) // pipe.vae_scale_factor
    rows = 2 * batch
    length = text_max_length(pipe.tokenizer)
    x = torch.randn(rows, c.in_channels, side, side, dtype=t.dtype, device=t.device)
    text = torch.randn(rows, length, c.caption_channels, dtype=t.dtype, device=t.device)
    mask = torch.ones(rows, length, dtype=torch.long, device=t.device)
    step = torch.full((rows,), 500.0, device=t.device)

    def fwd():
        t(x, encoder_hidden_states=text, encoder_attention_mask=mask, timestep=step, return_dict=False)

    return time_calls(lambda _: fwd(), repeats, warmup=1).median


def linearity(
    pipe, prompts: list[str], batch: int, batch_counts: list[int], timestep_counts: list[int], repeats: int
) -> dict:
    """Median seconds of the analysis for every (number of batches, timesteps) pair, and a line fit."""
    cells = []
    for nb in batch_counts:
        for nt in timestep_counts:
            chosen = [prompts[i % len(prompts)] for i in range(nb * batch)]
            s = time_calls(
                lambda _, chosen=chosen, nt=nt: block_importance(pipe, chosen, nt, batch_size=batch), repeats
            ).median
            cells.append({"batches": nb, "timesteps": nt, "units": nb * nt, "seconds": s, "per_unit_s": s / (nb * nt)})
    units = np.array([c["units"] for c in cells], float)
    secs = np.array([c["seconds"] for c in cells])
    slope, intercept = np.polyfit(units, secs, 1)
    residual = secs - (slope * units + intercept)
    r2 = 1 - residual.var() / secs.var() if secs.var() > 0 else 1.0
    return {
        "cells": cells,
        "seconds_per_unit_fit": float(slope),
        "intercept_s": float(intercept),
        "r2": float(r2),
        "goal": f"r2 >= {LINEARITY_GOAL}",
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        prog="lab bench importance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="checkpoints/L", help="pipeline dir (an untrained L if absent: same speed)")
    ap.add_argument("--prompts", default="quick", help="calibration prompt set of the default analysis")
    ap.add_argument("--timesteps", type=int, default=SamplerConfig.steps)
    ap.add_argument("--batch-size", type=int, default=SamplerConfig.batch_size)
    ap.add_argument("--repeats", type=int, default=3, help="timings per measurement (median)")
    ap.add_argument("--quick", action="store_true", help="a 6-block tiny model, 4 prompts, 4-8 timesteps")
    ap.add_argument("--out", default="reports/bench/importance.json")
    args = ap.parse_args(argv)
    prompts = [p.text for p in world.load_prompts(args.prompts)]
    batch_counts, timestep_counts = [1, 2], [args.timesteps // 2, args.timesteps]
    if args.quick:
        torch.manual_seed(0)
        pipe = build_pipeline(QUICK_SIZE, vae=build_vae("tiny"))
        prompts, args.timesteps, args.batch_size, args.repeats = prompts[:4], 4, 2, 3
        timestep_counts = [4, 8]
        model = "tiny (untrained, 6 blocks)"
    elif Path(args.model, "model_index.json").is_file():
        pipe, model = load_pipeline(args.model), args.model
    else:
        torch.manual_seed(0)
        pipe, model = build_pipeline("L"), "L (untrained)"
    pipe.set_progress_bar_config(disable=True)

    default_s = time_calls(
        lambda _: block_importance(pipe, prompts, args.timesteps, batch_size=args.batch_size), 1
    ).wall[0]
    batches = -(-len(prompts) // args.batch_size)
    lin = linearity(pipe, prompts, args.batch_size, batch_counts, timestep_counts, args.repeats)
    forward_s = plain_forward_seconds(pipe, args.batch_size, args.repeats)
    per_unit = statistics.median(c["per_unit_s"] for c in lin["cells"] if c["batches"] == max(batch_counts))
    result = {
        "benchmark": "importance",
        "model": model,
        "num_blocks": len(pipe.transformer.transformer_blocks),
        "default_analysis": {
            "prompts": len(prompts),
            "batch_size": args.batch_size,
            "batches": batches,
            "timesteps": args.timesteps,
            "seconds": default_s,
            "per_unit_s": default_s / (batches * args.timesteps),
        },
        "linearity": lin,
        "overhead": {
            "plain_forward_s": forward_s,
            "analysis_per_unit_s": per_unit,
            "ratio": per_unit / forward_s,
            "goal": f"ratio <= {OVERHEAD_GOAL}",
        },
    }
    d = result["default_analysis"]
    print(
        f"default analysis ({model}, {d['prompts']} prompts x {d['timesteps']} timesteps, {d['batches']} batches): "
        f"{d['seconds']:.2f} s"
    )
    print(f"linearity: {lin['seconds_per_unit_fit'] * 1000:.1f} ms per (batch, timestep), R^2 = {lin['r2']:.4f}")
    o = result["overhead"]
    print(
        f"one plain forward: {o['plain_forward_s'] * 1000:.1f} ms; analysis per (batch, timestep): "
        f"{o['analysis_per_unit_s'] * 1000:.1f} ms -> ratio {o['ratio']:.2f}"
    )
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return result
