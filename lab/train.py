"""Flow-matching training of the SANA transformer on the shapes world, on accelerate.

    lab train --config configs/S.yaml --out runs/S                         # one process
    accelerate launch --num_processes 2 --cpu -m lab.cli train ...        # real 2-process DDP

The objective is SANA's (rectified flow, velocity target): x_t = (1 - s) x0 + s noise,
target = noise - x0, s logit-normal then shifted; 10% of captions dropped to "" for CFG.
Everything a step draws (scenes, noise, timesteps, dropout) comes from `stream_seed(seed, step,
rank)` (`lab.training_data`), so a run interrupted at any checkpoint and resumed gives bit-identical
weights; scenes are rendered ahead in DataLoader workers where that helps (`data_workers`).
Ctrl-C saves a checkpoint at the next step boundary before exiting.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lab.checkpoint import GracefulInterrupt, atomic_directory, load_state, save_state
from lab.config import config_dict, save_config
from lab.model import build_pipeline, encode_text, load_pipeline, quiet_hub_logging
from lab.runlog import RunLog
from lab.schedule import lr_at
from lab.training_data import NOISE_STREAM, stream_seed, training_batches


@dataclass(frozen=True)
class FlowConfig:
    """The training-time noise schedule (SANA 1.5 §2; diffusers' SANA training example)."""

    logit_mean: float = 0.0  # logit-normal timestep density
    logit_std: float = 1.0
    flow_shift: float = 1.0  # s' = shift s / (1 + (shift - 1) s); SANA uses 3.0 at 1024px


def sample_sigmas(batch_size: int, flow: FlowConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise levels s in (0, 1), shape (B,): logit-normal, then shifted."""
    u = torch.sigmoid(torch.randn(batch_size, generator=generator) * flow.logit_std + flow.logit_mean)
    return flow.flow_shift * u / (1 + (flow.flow_shift - 1) * u)


def flow_matching_loss(transformer, latents, text_embeds, text_mask, generator=None, flow: FlowConfig = FlowConfig()):
    """Rectified-flow velocity loss of one batch (a scalar).

    Args:
        latents: (B, C, H, W) scaled VAE latents (x0).
        text_embeds: (B, L, caption_channels); text_mask: (B, L) of 1/0.
        generator: CPU generator for the noise and timestep draws (reproducible steps).
    """
    b = latents.shape[0]
    sigmas = sample_sigmas(b, flow, generator).to(latents.device)
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
    s = sigmas.view(b, 1, 1, 1).to(latents.dtype)
    noisy = (1 - s) * latents + s * noise
    # The pipeline feeds the transformer t = sigma x 1000 (the scheduler's flow timesteps).
    pred = transformer(noisy, encoder_hidden_states=text_embeds, encoder_attention_mask=text_mask,
                       timestep=sigmas * 1000, return_dict=False)[0]
    return F.mse_loss(pred.float(), (noise - latents).float())


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Either `size` + `vae` (fresh transformer and text encoder) or `init_from`
    (a pipeline directory: a trained, grown or pruned model, whose text encoder stays frozen)."""

    size: str = "S"  # lab.model.SIZES key, used when init_from is empty
    vae: str = "checkpoints/vae"  # AutoencoderDC directory, used when init_from is empty
    init_from: str = ""  # SanaPipeline directory to continue from
    train_text_encoder: bool = True  # only for fresh models: SANA's encoder is frozen otherwise
    steps: int = 3000
    batch_size: int = 64  # per process
    optimizer: str = "adamw"  # lab.optim.OPTIMIZERS
    lr: float = 6e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1  # cosine decay to lr x this
    grad_clip: float = 1.0
    caption_dropout: float = 0.1  # SANA: 10% empty captions for classifier-free guidance
    logit_mean: float = 0.0
    logit_std: float = 1.0
    flow_shift: float = 1.0
    ema_decay: float = 0.0  # 0 = no EMA; the saved pipeline uses EMA weights when on
    mixed_precision: str = "no"  # accelerate: no | fp16 | bf16
    seed: int = 0
    checkpoint_every: int = 250
    text_max_length: int = 16  # prompt tokens (world prompts are <= 12 with BOS)
    task_weights: tuple[float, ...] = ()  # relative share of each world.TASKS in the data; () = uniform
    data_workers: int | None = None  # scene-rendering processes per training process (0: inline; None: 0 on CPU, spare cores on CUDA)

    @property
    def flow(self) -> FlowConfig:
        return FlowConfig(self.logit_mean, self.logit_std, self.flow_shift)


def _components(cfg: TrainConfig):
    """(tokenizer, text_encoder, vae, transformer, scheduler, train_text_encoder)."""
    from lab.provenance import repo_path

    if cfg.init_from:  # relative paths: the working directory, then the repository (checkpoints/S)
        pipe = load_pipeline(repo_path(cfg.init_from))
        return pipe.tokenizer, pipe.text_encoder, pipe.vae, pipe.transformer, pipe.scheduler, False
    from diffusers import AutoencoderDC

    vae = repo_path(cfg.vae)
    if not (vae / "config.json").is_file():
        raise ValueError(f"vae {cfg.vae!r} is not an AutoencoderDC directory (train one with `lab train-vae`)")
    torch.manual_seed(cfg.seed)
    pipe = build_pipeline(cfg.size, vae=AutoencoderDC.from_pretrained(vae))
    return pipe.tokenizer, pipe.text_encoder, pipe.vae, pipe.transformer, pipe.scheduler, cfg.train_text_encoder


def train(cfg: TrainConfig, out: str | Path, resume: bool = True, progress: bool = True):
    """Trains; checkpoints into `out/checkpoint` every `checkpoint_every` steps (atomically), logs
    `out/train_log.jsonl`, and writes the final `SanaPipeline` to `out/pipeline`.

    Returns the pipeline directory path.
    """
    from accelerate import Accelerator
    from diffusers import SanaPipeline
    from diffusers.training_utils import EMAModel

    from lab.optim import build_optimizer

    quiet_hub_logging()
    out = Path(out)
    # cpu=True on GPU-less machines: accelerate then runs multi-process DDP over gloo
    acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    tokenizer, text_encoder, vae, transformer, scheduler, train_te = _components(cfg)
    vae.requires_grad_(False).eval().to(acc.device)
    text_encoder.requires_grad_(train_te)
    if not train_te:
        text_encoder.eval()
    modules = {"transformer": transformer} | ({"text_encoder": text_encoder} if train_te else {})
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = build_optimizer(cfg.optimizer, params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMAModel(transformer.parameters(), decay=cfg.ema_decay) if cfg.ema_decay > 0 else None

    ckpt = out / "checkpoint"
    log = RunLog(out / "train_log.jsonl", acc.device)
    start = 0
    if resume and ckpt.is_dir():
        opt_state, state = load_state(ckpt)
        for name, m in modules.items():
            m.load_state_dict(type(m).from_pretrained(ckpt / name).state_dict())
        optimizer.load_state_dict(opt_state)
        if ema is not None:
            ema.load_state_dict(torch.load(ckpt / "ema.pt", weights_only=False))
        start = state["step"]
        if acc.is_main_process:
            log.truncate_after(start)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "train_config.yaml")

    prepared = acc.prepare(*modules.values(), optimizer)
    wrapped = dict(zip(modules, prepared[:-1]))
    optimizer = prepared[-1]
    if not train_te:
        text_encoder.to(acc.device)
    if ema is not None:
        ema.to(acc.device)
    scale = vae.config.scaling_factor

    def save_checkpoint(step: int) -> None:
        acc.wait_for_everyone()
        if acc.is_main_process:
            with atomic_directory(ckpt) as tmp:
                for name, m in wrapped.items():
                    acc.unwrap_model(m).save_pretrained(tmp / name)
                if ema is not None:
                    torch.save(ema.state_dict(), tmp / "ema.pt")
                save_state(tmp, optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer,
                           {"step": step, "config": config_dict(cfg)})
        acc.wait_for_everyone()

    for m in wrapped.values():
        m.train()
    bar = tqdm(initial=start, total=cfg.steps, desc="train", disable=not (progress and acc.is_main_process))
    batches = training_batches(cfg.seed, cfg.batch_size, start, cfg.steps, acc.process_index, cfg.data_workers,
                               int(os.environ.get("LOCAL_WORLD_SIZE", acc.num_processes)),
                               task_weights=cfg.task_weights)
    with GracefulInterrupt() as interrupt:
        for step, (prompts, pixels) in batches:
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            gen = torch.Generator().manual_seed(stream_seed(cfg.seed, step, acc.process_index, NOISE_STREAM))
            drop = torch.rand(len(prompts), generator=gen) < cfg.caption_dropout
            prompts = ["" if d else p for p, d in zip(prompts, drop.tolist())]
            with torch.no_grad():
                latents = vae.encode(pixels.to(acc.device)).latent * scale
            with torch.set_grad_enabled(train_te):
                embeds, mask = encode_text(tokenizer, wrapped.get("text_encoder", text_encoder), prompts, cfg.text_max_length)
            with acc.autocast():
                loss = flow_matching_loss(wrapped["transformer"], latents, embeds, mask, gen, cfg.flow)
            optimizer.zero_grad(set_to_none=True)
            acc.backward(loss)
            grad_norm = acc.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.step(transformer.parameters())
            if acc.is_main_process:
                rec = log.step(step + 1, cfg.batch_size * acc.num_processes, loss=loss.item(), lr=lr,
                               grad_norm=float(grad_norm))
                bar.update()
                bar.set_postfix(loss=f"{rec['loss']:.4f}", ips=f"{rec['images_per_s']:.0f}")
            stop = interrupt.requested
            if (step + 1) % cfg.checkpoint_every == 0 or stop:
                save_checkpoint(step + 1)
            if stop:
                raise KeyboardInterrupt(f"interrupted; checkpoint saved at step {step + 1} in {ckpt}")
    bar.close()
    if cfg.steps % cfg.checkpoint_every != 0 or not ckpt.is_dir():  # the loop saved the last step otherwise
        save_checkpoint(cfg.steps)

    final = acc.unwrap_model(wrapped["transformer"])
    if ema is not None:
        final = copy.deepcopy(final)
        ema.copy_to(final.parameters())
    te = acc.unwrap_model(wrapped["text_encoder"]) if train_te else text_encoder
    if acc.is_main_process:
        pipe = SanaPipeline(tokenizer=tokenizer, text_encoder=te, vae=vae, transformer=final, scheduler=scheduler)
        with atomic_directory(out / "pipeline") as tmp:
            pipe.save_pretrained(tmp)
    acc.wait_for_everyone()
    return out / "pipeline"
