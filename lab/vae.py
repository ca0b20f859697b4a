"""Training the lab's DC-AE (`AutoencoderDC`) on the shapes world: 64x64x3 <-> 8x8xC.

    lab train-vae --config configs/vae.yaml --out checkpoints/vae

A deterministic autoencoder like SANA's DC-AE: reconstruction loss (foreground pixels weighted up,
since objects are small on a white page) plus a light L2 on latents to keep their scale tame.
The saved config's `scaling_factor` makes latents unit-variance for the diffusion model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lab import world
from lab.checkpoint import GracefulInterrupt, atomic_directory, load_state, save_state
from lab.config import config_dict, save_config
from lab.model import VAESize, build_vae
from lab.runlog import RunLog
from lab.schedule import lr_at
from lab.training_data import HOLDOUT_STREAM, stream_seed


@dataclass(frozen=True)
class VAETrainConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05  # cosine decay to lr x this
    foreground_weight: float = 4.0  # extra loss weight on pixels that are not background
    latent_l2: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 200
    scale_samples: int = 512  # images used to measure the latent std for scaling_factor
    block_out_channels: tuple[int, ...] = (16, 32, 64, 64)  # encoder
    decoder_block_out_channels: tuple[int, ...] = (16, 32, 64, 128)
    encoder_layers_per_block: tuple[int, ...] = (1, 1, 1, 1)
    decoder_layers_per_block: tuple[int, ...] = (1, 1, 2, 2)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, 64, 64, 3) uint8 -> (B, 3, 64, 64) float in [-1, 1], the pipeline's pixel convention."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _build(cfg: VAETrainConfig):
    from diffusers import AutoencoderDC

    vae = build_vae(VAESize(cfg.block_out_channels, cfg.encoder_layers_per_block, cfg.decoder_layers_per_block))
    if cfg.decoder_block_out_channels != cfg.block_out_channels:  # a wider decoder than encoder
        # built second, from the first one's config: this RNG sequence initialised checkpoints/vae,
        # so keep it for `lab train-vae` to reproduce that model exactly
        kwargs = dict(vae.config)
        kwargs["decoder_block_out_channels"] = cfg.decoder_block_out_channels
        vae = AutoencoderDC(**{k: v for k, v in kwargs.items() if not k.startswith("_")})
    return vae


def train_vae(cfg: VAETrainConfig, out: str | Path, resume: bool = True, progress: bool = True):
    """Trains the autoencoder; checkpoints into `out/checkpoint`, writes the model to `out/vae`.

    Returns the trained `AutoencoderDC` (eval mode, `scaling_factor` set).
    """
    out = Path(out)
    torch.manual_seed(cfg.seed)
    vae = _build(cfg)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr)
    log = RunLog(out / "train_log.jsonl")
    start = 0
    ckpt = out / "checkpoint"
    if resume and ckpt.is_dir():
        from diffusers import AutoencoderDC

        opt_state, state = load_state(ckpt)
        vae.load_state_dict(AutoencoderDC.from_pretrained(ckpt / "vae").state_dict())
        opt.load_state_dict(opt_state)
        start = state["step"]
        log.truncate_after(start)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "train_config.yaml")

    def checkpoint(step):
        with atomic_directory(ckpt) as tmp:
            vae.save_pretrained(tmp / "vae")
            save_state(tmp, opt, {"step": step, "config": config_dict(cfg)})

    vae.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train-vae", disable=not progress)
    with GracefulInterrupt() as interrupt:
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            _, images = world.training_batch(stream_seed(cfg.seed, step), cfg.batch_size)
            x = images_to_tensor(images)
            z = vae.encode(x).latent
            y = vae.decode(z).sample
            fg = (x < 1 - 1e-3).any(dim=1, keepdim=True).float()  # any channel off white
            rec = ((y - x) ** 2 * (1 + cfg.foreground_weight * fg)).mean()
            loss = rec + cfg.latent_l2 * z.pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.step(step + 1, cfg.batch_size, loss=loss.item(), recon=rec.item(), lr=opt.param_groups[0]["lr"])
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if (step + 1) % cfg.checkpoint_every == 0 or interrupt.requested:
                checkpoint(step + 1)
            if interrupt.requested:
                raise KeyboardInterrupt(f"interrupted; checkpoint saved at step {step + 1} in {ckpt}")
    vae.eval()
    vae.register_to_config(scaling_factor=latent_scaling_factor(vae, cfg.scale_samples, cfg.seed))
    with atomic_directory(out / "vae") as tmp:
        vae.save_pretrained(tmp)
    checkpoint(cfg.steps)
    return vae


@torch.no_grad()
def latent_scaling_factor(vae, n: int, seed: int) -> float:
    """1 / std of latents over `n` training images, so scaled latents have unit variance."""
    _, images = world.training_batch(stream_seed(seed, 0, stream=HOLDOUT_STREAM), n)
    z = torch.cat([vae.encode(images_to_tensor(images[i : i + 64])).latent for i in range(0, n, 64)])
    return float(1.0 / z.std())


@torch.no_grad()
def reconstruct(vae, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Encode + decode. (N, 64, 64, 3) uint8 -> (N, 64, 64, 3) uint8."""
    out = []
    for i in range(0, len(images), batch_size):
        x = images_to_tensor(images[i : i + batch_size]).to(vae.device, vae.dtype)
        out.append(tensor_to_images(vae.decode(vae.encode(x).latent).sample.float()))
    return np.concatenate(out)
