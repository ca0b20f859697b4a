"""The CAME-8bit experiment (SANA 1.5 §2.3 and its memory table), run by notebooks/came8bit.ipynb.

    cfg = preset(Came8bitConfig, "came8bit", "full")
    metrics = run(cfg, "reports/came8bit")
    figs = figures(metrics)

(a) memory: optimizer-state bytes of AdamW (fp32), AdamW8bit, CAME and CAME8bit, measured after one
    real step on a lab transformer and estimated (`lab.optim.estimate_state_bytes`, meta device) for
    the real SANA 1.5 1.6B and 4.8B shapes; SANA 1.5 claims CAME-8bit needs about 1/8 of AdamW's state.
(c) fidelity: the four optimizers train the same transformer from the same seed on the same fixed
    synthetic batches and noise draws with the trainer's step (`lab.train.training_step`, the
    settings of `Came8bitConfig.train`); loss curves and the mean of the last steps, CAME8bit vs
    CAME (and AdamW8bit vs AdamW).

`lab bench optim` runs (a) and (c) with the same presets and adds (b), the optimizers' step times.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lab.config import config_dict
from lab.model import build_transformer, quiet_hub_logging
from lab.optim import BLOCKSIZE, OPTIMIZERS, build_optimizer, estimate_state_bytes, state_bytes
from lab.schedule import lr_at
from lab.train import TrainConfig, training_step

METRICS_FILE = "metrics.json"


def _fidelity_training() -> TrainConfig:
    # SANA 1.0's CAME lr for all four optimizers, held constant, on the raw loss: the optimizers
    # alone make the difference (no clipping, no caption dropout: the captions are random embeddings)
    return TrainConfig(
        size="S", steps=300, batch_size=8, lr=1e-4, warmup_steps=0, min_lr_ratio=1.0, grad_clip=0.0, caption_dropout=0.0
    )


@dataclass(frozen=True)
class Came8bitConfig:
    """One run. Presets: configs/experiments/came8bit.yaml (quick, full)."""

    memory_size: str = "S"  # lab model measured after one real step
    meta_sizes: tuple[str, ...] = ("sana-1.6b", "sana-4.8b")  # real shapes, estimated on the meta device
    train: TrainConfig = field(default_factory=_fidelity_training)  # the fidelity runs (size, steps, batch, lr, seed;
    # `optimizer` is not used: every one of lab.optim.OPTIMIZERS runs); batch, lr and seed also of (a) and (b)
    tail: int = 50  # fidelity compares the mean loss of the last `tail` steps
    num_batches: int = 4  # fixed synthetic batches, cycled
    min_8bit_size: int | None = None  # fidelity run's 8-bit threshold (None: each optimizer's default)
    speed_size: str = "S"  # (b), `lab bench optim` only: model timed
    speed_reps: int = 20  # (b): timed repetitions per optimizer (after one untimed warm-up step)
    ratio_target: float = 0.14  # CAME8bit / AdamW state on 4.8B
    speed_target: float = 1.5  # CAME8bit / CAME optimizer-step time
    fidelity_target: float = 0.03  # relative difference of the tail mean losses

    def __post_init__(self):
        if not 1 <= self.tail <= self.train.steps:
            raise ValueError(f"tail={self.tail} must be between 1 and the {self.train.steps} training steps")


Config = Came8bitConfig


# ---------------------------------------------------------------------------------------------
# Inputs


def synthetic_batches(transformer, cfg: Came8bitConfig) -> list[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
    """`cfg.num_batches` fixed batches: (latents (B, C, H, W), (text embeddings (B, L, caption_channels),
    mask (B, L))), B = cfg.train.batch_size, L = cfg.train.text_max_length.

    Masks keep a random number (>= 1) of leading tokens, as padded captions do.
    """
    c, b, length = transformer.config, cfg.train.batch_size, cfg.train.text_max_length
    g = torch.Generator().manual_seed(cfg.train.seed)
    batches = []
    for _ in range(cfg.num_batches):
        latents = torch.randn(b, c.in_channels, c.sample_size, c.sample_size, generator=g)
        text = torch.randn(b, length, c.caption_channels, generator=g)
        lengths = torch.randint(1, length + 1, (b, 1), generator=g)
        mask = (torch.arange(length) < lengths).long()
        batches.append((latents, (text, mask)))
    return batches


def step(transformer, optimizer, batch, generator, cfg: Came8bitConfig):
    """The trainer's step (`lab.train.training_step`) on one synthetic batch, with `cfg.train`'s settings."""
    latents, text = batch
    t = cfg.train
    return training_step(transformer, optimizer, latents, text, generator, t.flow, t.caption_dropout, t.grad_clip)


def fraction_8bit(optimizer) -> float:
    """Fraction of the optimizer's parameter elements whose state holds 8-bit (uint8) tensors."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    is_8bit = [any(torch.is_tensor(v) and v.dtype == torch.uint8 for v in optimizer.state[p].values()) for p in params]
    return sum(p.numel() for p, q in zip(params, is_8bit) if q) / sum(p.numel() for p in params)


def fresh_transformer(size: str, seed: int):
    """An untrained transformer of `size` (lab.model.SIZES), initialised from `seed`."""
    torch.manual_seed(seed)
    return build_transformer(size)


# ---------------------------------------------------------------------------------------------
# (a) memory


def measure_memory(cfg: Came8bitConfig) -> dict:
    """State bytes per optimizer and model; `vs_adamw` is the ratio to torch AdamW's fp32 state."""
    rows = []
    base = fresh_transformer(cfg.memory_size, cfg.train.seed)
    batch = synthetic_batches(base, cfg)[0]
    for name in OPTIMIZERS:
        model = copy.deepcopy(base)
        optimizer = build_optimizer(name, model.parameters(), lr=cfg.train.lr)
        step(model, optimizer, batch, torch.Generator().manual_seed(cfg.train.seed), cfg)
        rows.append(
            dict(
                model=cfg.memory_size,
                optimizer=name,
                how="measured after one step",
                params=sum(p.numel() for p in model.parameters()),
                state_bytes=state_bytes(optimizer),
                estimated_bytes=estimate_state_bytes(model, name),
            )
        )
    for size in cfg.meta_sizes:
        model = build_transformer(size, device="meta")
        for name in OPTIMIZERS:
            rows.append(
                dict(
                    model=size,
                    optimizer=name,
                    how="estimated (meta)",
                    params=sum(p.numel() for p in model.parameters()),
                    state_bytes=estimate_state_bytes(model, name),
                )
            )
    adamw = {r["model"]: r["state_bytes"] for r in rows if r["optimizer"] == "adamw"}
    for r in rows:
        r["bytes_per_param"] = r["state_bytes"] / r["params"]
        r["vs_adamw"] = r["state_bytes"] / adamw[r["model"]]
    ratios = {r["model"]: r["vs_adamw"] for r in rows if r["optimizer"] == "came8bit"}
    # 8-bit m (1 byte) + one fp32 absmax per block, over AdamW's two fp32 moments
    limit = (torch.uint8.itemsize + torch.float32.itemsize / BLOCKSIZE) / (2 * torch.float32.itemsize)
    largest = cfg.meta_sizes[-1] if cfg.meta_sizes else cfg.memory_size
    return dict(
        rows=rows,
        came8bit_vs_adamw=ratios,
        theoretical_limit=limit,
        target=cfg.ratio_target,
        target_model=largest,
        meets_target=ratios[largest] <= cfg.ratio_target,
    )


def format_memory_table(memory: dict) -> str:
    """The memory rows as a fixed-width text table."""
    lines = [f"{'model':<10} {'optimizer':<10} {'params':>14} {'state MiB':>12} {'B/param':>8} {'vs AdamW':>9}  how"]
    for r in memory["rows"]:
        lines.append(
            f"{r['model']:<10} {r['optimizer']:<10} {r['params']:>14,} {r['state_bytes'] / 2**20:>12,.1f} "
            f"{r['bytes_per_param']:>8.3f} {r['vs_adamw']:>9.3f}  {r['how']}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# (c) fidelity


def measure_fidelity(cfg: Came8bitConfig, names: tuple[str, ...] = OPTIMIZERS) -> dict:
    """Loss curves of each optimizer from the same start, batches and noise draws, the lr following
    the trainer's schedule (`lab.schedule.lr_at`) of `cfg.train`."""
    t = cfg.train
    base = fresh_transformer(t.size, t.seed)
    batches = synthetic_batches(base, cfg)
    curves, quantized = {}, {}
    for name in names:
        model = copy.deepcopy(base)
        kwargs = {"min_8bit_size": cfg.min_8bit_size} if "8bit" in name and cfg.min_8bit_size is not None else {}
        optimizer = build_optimizer(name, model.parameters(), lr=t.lr, **kwargs)
        generator = torch.Generator().manual_seed(t.seed)
        losses = []
        for i in range(t.steps):
            for g in optimizer.param_groups:
                g["lr"] = lr_at(i, t)
            losses.append(step(model, optimizer, batches[i % len(batches)], generator, cfg).loss)
        curves[name] = losses
        quantized[name] = fraction_8bit(optimizer)
    tail = {name: statistics.fmean(c[-cfg.tail :]) for name, c in curves.items()}
    rel = {
        "came8bit_vs_came": (tail["came8bit"] - tail["came"]) / tail["came"],
        "adamw8bit_vs_adamw": (tail["adamw8bit"] - tail["adamw"]) / tail["adamw"],
    }
    return dict(
        model=t.size,
        steps=t.steps,
        tail=cfg.tail,
        lr=t.lr,
        fraction_8bit=quantized,
        tail_mean_loss=tail,
        relative_difference=rel,
        target=cfg.fidelity_target,
        meets_target=abs(rel["came8bit_vs_came"]) <= cfg.fidelity_target,
        curves=curves,
    )


# ---------------------------------------------------------------------------------------------
# The experiment


def run(cfg: Came8bitConfig, out: str | Path | None = None, mode: str | None = None) -> dict:
    """(a) and (c). Writes `out/metrics.json` when `out` is given (with `mode`, the preset's name,
    when given). Returns {"config", "memory", "fidelity"} (+ "mode")."""
    from lab.provenance import write_json

    quiet_hub_logging()
    metrics = {
        "config": config_dict(cfg),
        **({"mode": mode} if mode else {}),
        "memory": measure_memory(cfg),
        "fidelity": measure_fidelity(cfg),
    }
    if out is not None:
        write_json(metrics, Path(out) / METRICS_FILE)
    return metrics


def figures(metrics: dict, stamp: dict | None = None) -> dict:
    """The experiment's figures by name (lab.plots draws them): "memory" (state bytes per parameter
    and ratio to AdamW) and "loss_curves" (the fidelity runs)."""
    from lab import plots

    fid = metrics["fidelity"]
    if stamp is None:
        stamp = {
            "experiment": "came8bit",
            "mode": metrics.get("mode", "?"),
            "train_size": fid["model"],
            "steps": fid["steps"],
            "lr": fid["lr"],
        }
    curves = {name: list(enumerate(losses, 1)) for name, losses in fid["curves"].items()}
    return {
        "memory": plots.optimizer_memory_bars(
            metrics["memory"]["rows"], stamp=stamp, title="Optimizer state per parameter (label: ratio to AdamW fp32)"
        ),
        "loss_curves": plots.loss_curves(
            curves, title=f"{fid['model']} transformer, lr {fid['lr']}, same seed and batches", stamp=stamp
        ),
    }
