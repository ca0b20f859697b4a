"""`lab bench sample`: sampling speed, measured side by side in one run.

1. Best-of-16: per-image time of one batched call generating 16 candidates vs 16 single calls
   (goal: batched <= 0.5x).
2. Linear attention scaling: forward time of the transformer at 256, 1024 and 4096 tokens with
   SANA's linear self-attention vs the same weights with softmax self-attention
   (goal: linear t(4096) / t(1024) <= 4.5; softmax grows ~16x per 4x tokens once attention dominates).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lab.model import build_pipeline, load_pipeline
from lab.provenance import write_json
from lab.sampling import SamplerConfig, candidate_seeds, generate


class SoftmaxSelfAttention:
    """The softmax baseline: same projections and q/k norms as SANA's linear attention, but
    softmax(q k^T / sqrt(d)) v. Only for this comparison."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        b, n, _ = hidden_states.shape
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        q, k = attn.norm_q(q) if attn.norm_q is not None else q, attn.norm_k(k) if attn.norm_k is not None else k
        q, k, v = (t.view(b, n, attn.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1)
        return attn.to_out[1](attn.to_out[0](out))


def batched_vs_single(pipe, n: int, sampler: SamplerConfig, repeats: int) -> dict:
    prompt, seeds = "a photo of three red circles", candidate_seeds(0, n)
    batched, single = [], []
    for _ in range(repeats):  # interleaved, so drift on a noisy machine hits both alike
        t = time.perf_counter()
        generate(pipe, [prompt] * n, seeds, sampler)
        batched.append(time.perf_counter() - t)
        t = time.perf_counter()
        for s in seeds:
            generate(pipe, [prompt], [s], sampler)
        single.append(time.perf_counter() - t)
    b, s = statistics.median(batched) / n, statistics.median(single) / n
    return {
        "n": n,
        "steps": sampler.steps,
        "per_image_s_batched": b,
        "per_image_s_single": s,
        "ratio": b / s,
        "goal": "ratio <= 0.5",
    }


@torch.no_grad()
def attention_scaling(transformer, sides: list[int], repeats: int) -> dict:
    """Median forward time of the whole transformer, and of the first block's self-attention alone,
    per token count and attention kind. Sizes and kinds are interleaved within every repetition,
    so drift on a noisy machine hits all of them alike."""
    from diffusers.models.attention_processor import SanaLinearAttnProcessor2_0

    c = transformer.config
    text = torch.randn(1, 16, c.caption_channels)
    mask = torch.ones(1, 16, dtype=torch.long)
    kinds = {"linear": SanaLinearAttnProcessor2_0, "softmax": SoftmaxSelfAttention}
    attn = transformer.transformer_blocks[0].attn1
    inputs = {(side // c.patch_size) ** 2: torch.randn(1, c.in_channels, side, side) for side in sides}
    t = torch.tensor([500.0])
    model_times = {k: {n: [] for n in inputs} for k in kinds}
    attn_times = {k: {n: [] for n in inputs} for k in kinds}
    for rep in range(repeats + 1):  # repetition 0 warms up
        for tokens, x in inputs.items():
            hidden = torch.randn(1, tokens, c.num_attention_heads * c.attention_head_dim)
            for kind, proc in kinds.items():
                for block in transformer.transformer_blocks:
                    block.attn1.set_processor(proc())
                start = time.perf_counter()
                transformer(x, encoder_hidden_states=text, encoder_attention_mask=mask, timestep=t, return_dict=False)
                middle = time.perf_counter()
                attn(hidden)
                end = time.perf_counter()
                if rep:
                    model_times[kind][tokens].append(middle - start)
                    attn_times[kind][tokens].append(end - middle)
    for block in transformer.transformer_blocks:
        block.attn1.set_processor(SanaLinearAttnProcessor2_0())

    def summarize(times):
        med = {k: {n: statistics.median(v) for n, v in d.items()} for k, d in times.items()}
        toks = sorted(inputs)
        ratios = {k: {f"t({b})/t({a})": v[b] / v[a] for a, b in zip(toks, toks[1:])} for k, v in med.items()}
        return med, ratios

    seconds, ratios = summarize(model_times)
    attn_seconds, attn_ratios = summarize(attn_times)
    return {
        "seconds": seconds,
        "ratios": ratios,
        "self_attention_seconds": attn_seconds,
        "self_attention_ratios": attn_ratios,
        "repeats": repeats,
        "goal": "linear t(4096)/t(1024) <= 4.5 (whole transformer forward)",
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="lab bench sample", description=__doc__)
    ap.add_argument("--model", default="checkpoints/S", help="pipeline dir (an untrained S if absent: same speed)")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=SamplerConfig.steps)
    ap.add_argument("--repeats", type=int, default=3, help="best-of-N repetitions (each is 1 + N pipeline calls)")
    ap.add_argument("--attention-repeats", type=int, default=10, help="forward passes timed per (size, attention)")
    ap.add_argument("--quick", action="store_true", help="tiny model, 4 candidates, 4 steps")
    ap.add_argument("--out", default="reports/bench/sample.json")
    args = ap.parse_args(argv)
    sides = [16, 32, 64]
    if args.quick:
        args.n, args.steps, args.repeats, args.attention_repeats, sides = 4, 4, 1, 1, [8, 16, 32]
        pipe = build_pipeline("tiny")
    elif Path(args.model, "model_index.json").is_file():
        pipe = load_pipeline(args.model)
    else:
        torch.manual_seed(0)
        pipe = build_pipeline("S")
    pipe.set_progress_bar_config(disable=True)
    sampler = SamplerConfig(steps=args.steps)
    result = {
        "benchmark": "sample",
        "model": args.model if Path(args.model).exists() else "untrained",
        "batched_vs_single": batched_vs_single(pipe, args.n, sampler, args.repeats),
        "attention_scaling": attention_scaling(pipe.transformer, sides, args.attention_repeats),
    }
    r = result["batched_vs_single"]
    print(
        f"best-of-{r['n']}: {r['per_image_s_batched'] * 1000:.0f} ms/image batched vs "
        f"{r['per_image_s_single'] * 1000:.0f} ms single -> ratio {r['ratio']:.2f}"
    )
    for part in ("ratios", "self_attention_ratios"):
        for kind, rs in result["attention_scaling"][part].items():
            print(f"{part:<22}{kind:<8}" + "  ".join(f"{k} = {v:.2f}" for k, v in rs.items()))
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return result
