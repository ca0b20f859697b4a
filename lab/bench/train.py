"""`lab bench train`: training throughput of a model size (images/s), full step and its parts.

The full step is what `lab train` does with `TrainConfig`'s defaults (render the step's scenes,
VAE-encode, then the trainer's `lab.train.training_step`: caption dropout, text-encode, forward,
backward, clip, AdamW step); the transformer-only step isolates the network (the same step on
fixed latents and text embeddings). Goal for S at batch 64 on two CPU cores: >= 60 images/s.

`--data-workers 0 1 2` also runs the real trainer (`lab.train.train`, short runs side by side) with
scenes rendered inline and by that many DataLoader workers, and reports each one's images/s and its
ratio to inline rendering (goal: no slower on CPU; >= 2x on a GPU at batch 1024 bf16).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from lab.bench._timing import add_threads_argument, pin_threads, time_calls
from lab.model import build_pipeline, encode_text
from lab.optim import build_optimizer
from lab.provenance import write_json
from lab.train import TrainConfig, training_step
from lab.training_data import NOISE_STREAM, TrainingBatches, stream_seed

TRAINER_WARMUP_STEPS = 5  # trainer steps not timed: allocator warm-up, workers filling their queues


def trainer_throughput(
    size: str, batch_size: int, vae: str, workers: list[int], steps: int, warmup: int, mixed_precision: str = "no"
) -> dict:
    """The trainer's images/s (median over steps after `warmup`) for each number of render workers,
    each a fresh `steps`-step run of `size` in a temporary directory."""
    import tempfile

    from lab.runlog import read_log
    from lab.train import train

    out = {}
    for k in workers:
        cfg = TrainConfig(
            size=size,
            vae=vae,
            steps=steps,
            batch_size=batch_size,
            warmup_steps=1,
            checkpoint_every=10**9,
            mixed_precision=mixed_precision,
            data_workers=k,
        )
        with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
            train(cfg, tmp, progress=False)
            ips = [r["images_per_s"] for r in read_log(Path(tmp) / "train_log.jsonl")[warmup:]]
        out[str(k)] = {"images_per_s": statistics.median(ips), "steps_measured": len(ips)}
    base = out[str(workers[0])]["images_per_s"]
    for r in out.values():
        r["ratio_to_first"] = r["images_per_s"] / base
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="lab bench train", description=__doc__)
    ap.add_argument("--size", default="S")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--vae", default="checkpoints/vae", help="AutoencoderDC dir (a fresh one if absent: same speed)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny model, 3 repeats")
    ap.add_argument(
        "--data-workers",
        type=int,
        nargs="*",
        default=[],
        help="also time the real trainer with these render-worker counts (first = baseline), e.g. 0 1 2",
    )
    ap.add_argument(
        "--trainer-steps",
        type=int,
        default=30,
        help=f"steps per trainer run (the first {TRAINER_WARMUP_STEPS} are not timed)",
    )
    ap.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"], help="for the trainer runs")
    ap.add_argument("--out", default="reports/bench/train.json")
    add_threads_argument(ap)
    args = ap.parse_args(argv)
    pin_threads(args.threads)
    if args.quick:
        args.size, args.repeats, args.warmup = "tiny", 3, 1
    if any(k < 0 for k in args.data_workers):
        ap.error(f"--data-workers must be >= 0, got {args.data_workers}")
    if args.data_workers and args.trainer_steps <= TRAINER_WARMUP_STEPS:
        ap.error(f"--trainer-steps must be > {TRAINER_WARMUP_STEPS} (the untimed warm-up), got {args.trainer_steps}")

    from diffusers import AutoencoderDC

    vae = AutoencoderDC.from_pretrained(args.vae) if Path(args.vae, "config.json").is_file() else None
    cfg = TrainConfig(size=args.size, batch_size=args.batch_size)  # the trainer's lr, clipping, dropout, flow
    torch.manual_seed(cfg.seed)
    pipe = build_pipeline(cfg.size, vae=vae)
    tr, te, tok, vae = pipe.transformer, pipe.text_encoder, pipe.tokenizer, pipe.vae
    params = list(tr.parameters()) + list(te.parameters())
    opt = build_optimizer(cfg.optimizer, params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    vae.eval().requires_grad_(False)
    b = cfg.batch_size
    data = TrainingBatches(cfg.seed, b)  # the trainer's stream: step i's scenes

    def encode(prompts: list[str]):
        return encode_text(tok, te, prompts, cfg.text_max_length)

    def full_step(i: int):
        prompts, pixels = data[i]
        with torch.no_grad():
            latents = vae.encode(pixels).latent * vae.config.scaling_factor
        gen = torch.Generator().manual_seed(stream_seed(cfg.seed, i, 0, NOISE_STREAM))
        training_step(tr, opt, latents, prompts, gen, cfg.flow, cfg.caption_dropout, cfg.grad_clip, encode, params)

    c, s = tr.config.in_channels, tr.config.sample_size
    x = torch.randn(b, c, s, s)
    e, m = encode(["a photo of a red circle"] * b)
    text = (e.detach(), m)

    def transformer_step(i: int):
        training_step(
            tr, opt, x, text, torch.Generator().manual_seed(i), cfg.flow, grad_clip=cfg.grad_clip, params=params
        )

    def data_step(i: int):
        _, pixels = data[i]
        with torch.no_grad():
            vae.encode(pixels)

    results = {}
    for name, fn in [
        ("full_step", full_step),
        ("transformer_step", transformer_step),
        ("data_and_vae_encode", data_step),
    ]:
        t = time_calls(fn, args.repeats, args.warmup).median
        results[name] = {"seconds_per_step": t, "images_per_s": b / t}
    result = {
        "benchmark": "train",
        "size": args.size,
        "batch_size": b,
        "params": sum(p.numel() for p in tr.parameters()),
        "results": results,
        "goal": "S full step >= 60 images/s on 2 CPU cores",
    }
    for name, r in results.items():
        print(f"{name:<22}{r['images_per_s']:>9.1f} images/s  ({r['seconds_per_step'] * 1000:.0f} ms/step)")
    if args.data_workers:
        result["trainer_by_data_workers"] = trainer_throughput(
            args.size, b, args.vae, args.data_workers, args.trainer_steps, TRAINER_WARMUP_STEPS, args.mixed_precision
        )
        result["trainer_mixed_precision"] = args.mixed_precision
        for k, r in result["trainer_by_data_workers"].items():
            print(f"trainer, {k} render workers: {r['images_per_s']:.1f} images/s ({r['ratio_to_first']:.2f}x)")
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return result
