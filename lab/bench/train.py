"""`lab bench train`: training throughput of a model size (images/s), full step and its parts.

The full step is what `lab train` does (render scenes, VAE-encode, text-encode, forward, backward,
clip, AdamW step); the transformer-only step isolates the network. Goal for S at batch 64 on two
CPU cores: >= 60 images/s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lab import world
from lab.bench.timing import time_calls
from lab.checkpoint import stream_seed
from lab.model import build_pipeline, encode_text
from lab.provenance import write_json
from lab.train import FlowConfig, flow_matching_loss
from lab.vae import images_to_tensor


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="lab bench train", description=__doc__)
    ap.add_argument("--size", default="S")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--vae", default="checkpoints/vae", help="AutoencoderDC dir (a fresh one if absent: same speed)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny model, 3 repeats")
    ap.add_argument("--out", default="reports/bench/train.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.repeats, args.warmup = "tiny", 3, 1

    from diffusers import AutoencoderDC

    vae = AutoencoderDC.from_pretrained(args.vae) if Path(args.vae, "config.json").is_file() else None
    torch.manual_seed(0)
    pipe = build_pipeline(args.size, vae=vae)
    tr, te, tok, vae = pipe.transformer, pipe.text_encoder, pipe.tokenizer, pipe.vae
    opt = torch.optim.AdamW(list(tr.parameters()) + list(te.parameters()), lr=1e-4)
    vae.eval().requires_grad_(False)
    b = args.batch_size
    step = [0]

    def full_step():
        prompts, images = world.training_batch(stream_seed(0, step[0]), b)
        step[0] += 1
        with torch.no_grad():
            latents = vae.encode(images_to_tensor(images)).latent * vae.config.scaling_factor
        embeds, mask = encode_text(tok, te, prompts)
        loss = flow_matching_loss(tr, latents, embeds, mask, torch.Generator().manual_seed(step[0]), FlowConfig())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tr.parameters(), 1.0)
        opt.step()

    c, s = tr.config.in_channels, tr.config.sample_size
    x = torch.randn(b, c, s, s)
    e, m = encode_text(tok, te, ["a photo of a red circle"] * b)
    e = e.detach()

    def transformer_step():
        loss = flow_matching_loss(tr, x, e, m, torch.Generator().manual_seed(0), FlowConfig())
        opt.zero_grad()
        loss.backward()
        opt.step()

    def data_step():
        _, images = world.training_batch(stream_seed(1, step[0]), b)
        with torch.no_grad():
            vae.encode(images_to_tensor(images))

    results = {}
    for name, fn in [("full_step", full_step), ("transformer_step", transformer_step), ("data_and_vae_encode", data_step)]:
        t = time_calls(lambda _, fn=fn: fn(), args.repeats, args.warmup).median
        results[name] = {"seconds_per_step": t, "images_per_s": b / t}
    result = {"benchmark": "train", "size": args.size, "batch_size": b,
              "params": sum(p.numel() for p in tr.parameters()), "results": results,
              "goal": "S full step >= 60 images/s on 2 CPU cores"}
    for name, r in results.items():
        print(f"{name:<22}{r['images_per_s']:>9.1f} images/s  ({r['seconds_per_step'] * 1000:.0f} ms/step)")
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return result
