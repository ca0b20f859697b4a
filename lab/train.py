"""Flow-matching training of the SANA transformer on the shapes world, on accelerate.

    lab train --config configs/S.yaml --out runs/S                         # one process
    accelerate launch --num_processes 2 --cpu -m lab.cli train ...        # real 2-process DDP

The objective is SANA's (rectified flow, velocity target): x_t = (1 - s) x0 + s noise,
target = noise - x0, s logit-normal then shifted; 10% of captions dropped to "" for CFG.
Everything a step draws (scenes, noise, timesteps, dropout) comes from `stream_seed(seed, step,
rank)` (`lab.training_data`), so a run interrupted at any checkpoint and resumed gives bit-identical
weights; scenes are rendered ahead in DataLoader workers where that helps (`data_workers`).
Ctrl-C saves a checkpoint at the next step boundary before exiting.

One step (`training_step`: caption dropout, text encoding, the flow-matching loss, backward,
gradient clipping, the optimizer's step) is shared with the benchmarks, so what they time and
compare is what `lab train` does. `TrainCallbacks` let a caller watch steps and checkpoints and
evaluate the model every k steps inside one run (the growth experiment's GenEval-mini curves).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lab.checkpoint import GracefulInterrupt, atomic_directory, load_state, save_state
from lab.config import config_dict, save_config, with_defaults
from lab.model import POSITION_EMBEDDINGS, build_pipeline, encode_text, load_pipeline, quiet_hub_logging
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
    pred = transformer(
        noisy,
        encoder_hidden_states=text_embeds,
        encoder_attention_mask=text_mask,
        timestep=sigmas * 1000,
        return_dict=False,
    )[0]
    return F.mse_loss(pred.float(), (noise - latents).float())


def drop_captions(prompts: Sequence[str], rate: float, generator: torch.Generator) -> list[str]:
    """Classifier-free guidance's caption dropout: each prompt becomes "" with probability `rate`,
    one uniform draw per prompt from `generator` (none at rate 0, so the generator's later draws
    are those of a step without dropout)."""
    if rate <= 0:
        return list(prompts)
    drop = torch.rand(len(prompts), generator=generator) < rate
    return ["" if d else p for p, d in zip(prompts, drop.tolist())]


@dataclass(frozen=True)
class StepResult:
    """What one `training_step` measured."""

    loss: float  # flow-matching loss of the batch, before the update
    grad_norm: float | None  # total gradient norm before clipping; None when not clipping
    optimizer_seconds: float  # wall seconds inside optimizer.step()


def training_step(
    transformer,
    optimizer,
    latents: torch.Tensor,
    captions,
    generator: torch.Generator,
    flow: FlowConfig = FlowConfig(),
    caption_dropout: float = 0.0,
    grad_clip: float = 0.0,
    encode: Callable | None = None,
    params: Sequence[torch.nn.Parameter] | None = None,
    accelerator=None,
) -> StepResult:
    """One optimisation step of SANA's objective: caption dropout, text encoding, the flow-matching
    loss, backward, gradient clipping and the optimizer's step (the caller sets the lr first).

    Args:
        latents: (B, C, H, W) scaled VAE latents (x0).
        captions: B prompts, encoded by `encode(prompts) -> (embeds (B, L, D), mask (B, L))` after
            caption dropout; or that (embeds, mask) pair itself (no dropout possible then).
        generator: CPU generator of the step's draws, in order: dropout, then timesteps and noise.
        caption_dropout: fraction of captions replaced by "" (SANA: 0.1); grad_clip: max total
            gradient norm, 0 = no clipping.
        params: what is clipped (default: the optimizer's parameters).
        accelerator: an `accelerate.Accelerator` (autocast, backward and clipping through it), or None.
    """
    if isinstance(captions, tuple):
        if caption_dropout > 0:
            raise ValueError(
                f"caption_dropout={caption_dropout} needs the prompts; got precomputed text embeddings "
                "(pass prompts and `encode`, or caption_dropout=0)"
            )
        embeds, mask = captions
    else:
        if encode is None:
            raise ValueError("captions are prompts, so training_step needs `encode` (prompts -> (embeds, mask))")
        embeds, mask = encode(drop_captions(captions, caption_dropout, generator))
    autocast = accelerator.autocast() if accelerator is not None else contextlib.nullcontext()
    with autocast:
        loss = flow_matching_loss(transformer, latents, embeds, mask, generator, flow)
    optimizer.zero_grad(set_to_none=True)
    if accelerator is not None:
        accelerator.backward(loss)
    else:
        loss.backward()
    grad_norm = None
    if grad_clip > 0:
        params = params if params is not None else [p for g in optimizer.param_groups for p in g["params"]]
        clip = accelerator.clip_grad_norm_ if accelerator is not None else torch.nn.utils.clip_grad_norm_
        grad_norm = float(clip(params, grad_clip))
    start = time.perf_counter()
    optimizer.step()
    return StepResult(loss.item(), grad_norm, time.perf_counter() - start)


@dataclass
class TrainCallbacks:
    """Hooks into `train`, called on the main process between steps with the number of steps done.
    A resumed run calls them for the steps it runs; a checkpoint at step k is written after every
    hook of step k, so none is skipped by an interruption."""

    on_step: Callable[[int, dict], None] | None = None  # (step, its log record) after every step
    on_checkpoint: Callable[[int, Path], None] | None = None  # (step, checkpoint directory) after each is written
    evaluate: Callable[[int, object], None] | None = None  # (step, the current SanaPipeline) every evaluate_every steps
    evaluate_every: int = 0  # 0 = never; else every this many steps and after the last (EMA weights when on, eval mode)

    def __post_init__(self):
        if self.evaluate_every < 0 or (self.evaluate is None) != (self.evaluate_every == 0):
            raise ValueError(
                f"evaluate_every={self.evaluate_every} with evaluate={self.evaluate!r}; expected both "
                "(a callable and every k >= 1 steps) or neither"
            )

    def evaluates_at(self, step: int, last: int) -> bool:
        """Whether `evaluate` runs after `step` steps of a run of `last` steps."""
        return self.evaluate is not None and (step % self.evaluate_every == 0 or step == last)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Either `size` + `vae` (fresh transformer and text encoder) or `init_from`
    (a pipeline directory: a trained, grown or pruned model, whose text encoder stays frozen).
    From a grown pipeline, `new_block_lr_scale` trains the blocks growth added at lr x that scale
    (0 freezes them; `new_blocks`), the rest at lr."""

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
    grad_clip: float = 1.0  # max total gradient norm; 0 = no clipping
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
    # scene-rendering processes per training process (0: inline; None: 0 on CPU, spare cores on CUDA)
    data_workers: int | None = None
    new_block_lr_scale: float = 1.0  # lr x this for the blocks growth added (init_from's growth.json); 1 = one lr
    position_embedding: str = "none"  # fresh models only: lab.model.POSITION_EMBEDDINGS (SANA: none)
    # a pretrained text encoder directory (`lab pretrain-text-encoder`): a fresh model's, instead of a random
    # one (frozen unless train_text_encoder), or, with init_from, replacing the pipeline's (frozen; the
    # transformer re-learns its conditioning). SANA conditions on a frozen pretrained Gemma-2.
    text_encoder: str = ""

    def __post_init__(self):
        if self.position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(
                f"position_embedding={self.position_embedding!r} is unknown; expected one of {POSITION_EMBEDDINGS}"
            )
        if self.init_from and self.position_embedding != "none":
            raise ValueError(
                f"position_embedding={self.position_embedding!r} applies to a fresh model, but init_from "
                f"{self.init_from!r} is set (its transformer keeps its own); leave position_embedding at 'none'"
            )
        scale = self.new_block_lr_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
            raise ValueError(f"new_block_lr_scale={scale!r} is invalid; expected a finite number >= 0 (1 = one lr)")

    @property
    def flow(self) -> FlowConfig:
        return FlowConfig(self.logit_mean, self.logit_std, self.flow_shift)


def _components(cfg: TrainConfig):
    """(tokenizer, text_encoder, vae, transformer, scheduler, train_text_encoder)."""
    from lab.provenance import repo_path

    tokenizer = text_encoder = None
    if cfg.text_encoder:
        from lab.text_encoder import load_text_encoder

        tokenizer, text_encoder = load_text_encoder(repo_path(cfg.text_encoder))
    if cfg.init_from:  # relative paths: the working directory, then the repository (checkpoints/S)
        pipe = load_pipeline(repo_path(cfg.init_from))
        if text_encoder is not None:
            width = pipe.transformer.config.caption_channels
            if text_encoder.config.hidden_size != width:
                raise ValueError(
                    f"text_encoder {cfg.text_encoder!r} has hidden size {text_encoder.config.hidden_size}, but "
                    f"{cfg.init_from!r} reads captions of width {width}; pretrain one with hidden_size: {width}"
                )
            pipe.tokenizer, pipe.text_encoder = tokenizer, text_encoder
        return pipe.tokenizer, pipe.text_encoder, pipe.vae, pipe.transformer, pipe.scheduler, False
    from diffusers import AutoencoderDC

    vae = repo_path(cfg.vae)
    if not (vae / "config.json").is_file():
        raise ValueError(f"vae {cfg.vae!r} is not an AutoencoderDC directory (train one with `lab train-vae`)")
    torch.manual_seed(cfg.seed)
    pipe = build_pipeline(
        cfg.size,
        vae=AutoencoderDC.from_pretrained(vae),
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        position_embedding=cfg.position_embedding,
    )
    return pipe.tokenizer, pipe.text_encoder, pipe.vae, pipe.transformer, pipe.scheduler, cfg.train_text_encoder


def _trained_modules(transformer, text_encoder, train_text_encoder: bool) -> dict:
    """{checkpoint folder name: module} of what a run trains, and so saves in its checkpoints."""
    return {"transformer": transformer} | ({"text_encoder": text_encoder} if train_text_encoder else {})


def _restore_weights(ckpt: Path, modules: dict, ema=None) -> None:
    """Loads a checkpoint's weights into `modules` (`_trained_modules`) and its EMA state into
    `ema` (a diffusers EMAModel) when given."""
    for name, m in modules.items():
        m.load_state_dict(type(m).from_pretrained(ckpt / name).state_dict())
    if ema is not None:
        ema.load_state_dict(torch.load(ckpt / "ema.pt", weights_only=False))


# What may differ when a run resumes: how long it goes on, and how it renders and saves (the batches
# are the same with any number of workers). Anything else would continue one run as another.
RESUME_MAY_CHANGE = ("steps", "checkpoint_every", "data_workers")


def _check_same_run(recorded: dict | None, cfg: TrainConfig, ckpt: Path) -> None:
    """Refuses to resume the checkpoint of another run (a record written before a field existed
    reads as that field's default)."""
    import json

    if recorded is None:
        return
    recorded = with_defaults(TrainConfig, recorded)
    wanted = json.loads(json.dumps(config_dict(cfg)))
    differ = sorted(
        k for k in set(recorded) | set(wanted) if k not in RESUME_MAY_CHANGE and recorded.get(k) != wanted.get(k)
    )
    if differ:
        diffs = "; ".join(f"{k}: {recorded.get(k)!r} there, {wanted.get(k)!r} now" for k in differ)
        raise ValueError(
            f"{ckpt} is the checkpoint of another run ({diffs}); resume it with its own config, or train into "
            "another folder"
        )


def _pipeline(tokenizer, text_encoder, vae, transformer, scheduler):
    """A SanaPipeline of these components, its own progress bars off (lab shows its own)."""
    from diffusers import SanaPipeline

    pipe = SanaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def new_blocks(cfg: TrainConfig) -> list[int]:
    """Indices of the transformer blocks trained at lr x `new_block_lr_scale`: none at scale 1,
    else the blocks growth added to `init_from` (`lab.growth.added_blocks`). Reads only growth.json.

    Raises ValueError when the scale is not 1 and `init_from` is empty or not a grown pipeline.
    """
    scale = cfg.new_block_lr_scale
    if scale == 1:
        return []
    from lab.growth import GROWTH_FILE, added_blocks
    from lab.provenance import repo_path

    needs = f"new_block_lr_scale={scale} needs init_from to be a grown pipeline (with {GROWTH_FILE}, from `lab grow`)"
    if not cfg.init_from:
        raise ValueError(f"{needs}; init_from is empty (or set new_block_lr_scale: 1)")
    init = repo_path(cfg.init_from)
    if not (init / GROWTH_FILE).is_file():
        raise ValueError(f"{needs}; {cfg.init_from} has no {GROWTH_FILE} (or set new_block_lr_scale: 1)")
    return added_blocks(init)


def optimizer_params(cfg: TrainConfig, transformer, params: list) -> list:
    """What the optimizer is built over: `params` itself at `new_block_lr_scale` 1 (one group, as
    ever), else two groups, the parameters of `new_blocks(cfg)` with lr x scale and all others
    with lr. Each group then carries "lr_scale", the multiple of the scheduled lr it gets (`train`
    sets lr x lr_scale every step, so warm-up and decay scale both groups alike).
    """
    added = new_blocks(cfg)
    if not added:
        return params
    blocks = transformer.transformer_blocks
    if added[-1] >= len(blocks):
        raise ValueError(
            f"growth.json of init_from names added blocks {added} but its transformer has {len(blocks)} "
            "blocks; new_block_lr_scale needs the pipeline as `lab grow` wrote it"
        )
    new = {id(p) for i in added for p in blocks[i].parameters()}
    scale = float(cfg.new_block_lr_scale)
    return [
        {"params": [p for p in params if id(p) not in new], "lr_scale": 1.0},
        {"params": [p for p in params if id(p) in new], "lr": cfg.lr * scale, "lr_scale": scale},
    ]


@contextlib.contextmanager
def _evaluation_mode(*modules):
    """The modules in eval mode inside the block, then back in the mode each had."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def train(
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = True,
    progress: bool = True,
    callbacks: TrainCallbacks | None = None,
):
    """Trains; checkpoints into `out/checkpoint` every `checkpoint_every` steps (atomically), logs
    `out/train_log.jsonl`, and writes the final `SanaPipeline` to `out/pipeline`. `callbacks`
    (`TrainCallbacks`) watch steps and checkpoints and evaluate the model mid-run.

    Returns the pipeline directory path.
    """
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel

    from lab.optim import build_optimizer

    quiet_hub_logging()
    new_blocks(cfg)  # refuses a scaled lr for grown blocks without a grown init_from, before loading anything
    out = Path(out)
    # cpu=True on GPU-less machines: accelerate then runs multi-process DDP over gloo
    acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    tokenizer, text_encoder, vae, transformer, scheduler, train_te = _components(cfg)
    vae.requires_grad_(False).eval().to(acc.device)
    text_encoder.requires_grad_(train_te)
    if not train_te:
        text_encoder.eval()
    modules = _trained_modules(transformer, text_encoder, train_te)
    params = [p for m in modules.values() for p in m.parameters()]
    groups = optimizer_params(cfg, transformer, params)
    optimizer = build_optimizer(cfg.optimizer, groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMAModel(transformer.parameters(), decay=cfg.ema_decay) if cfg.ema_decay > 0 else None

    ckpt = out / "checkpoint"
    log = RunLog(out / "train_log.jsonl", acc.device)
    start = 0
    if resume and ckpt.is_dir():
        opt_state, state = load_state(ckpt)
        _check_same_run(state.get("config"), cfg, ckpt)
        _restore_weights(ckpt, modules, ema)
        optimizer.load_state_dict(opt_state)
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

    callbacks = callbacks or TrainCallbacks()

    def save_checkpoint(step: int) -> None:
        acc.wait_for_everyone()
        if acc.is_main_process:
            with atomic_directory(ckpt) as tmp:
                for name, m in wrapped.items():
                    acc.unwrap_model(m).save_pretrained(tmp / name)
                if ema is not None:
                    torch.save(ema.state_dict(), tmp / "ema.pt")
                save_state(
                    tmp,
                    optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer,
                    {"step": step, "config": config_dict(cfg)},
                )
            if callbacks.on_checkpoint is not None:
                callbacks.on_checkpoint(step, ckpt)
        acc.wait_for_everyone()

    def current_pipeline():
        """The model as trained so far, sharing this run's modules (EMA weights in a copy when on)."""
        transformer_now = acc.unwrap_model(wrapped["transformer"])
        if ema is not None:
            transformer_now = copy.deepcopy(transformer_now)
            ema.copy_to(transformer_now.parameters())
        te = acc.unwrap_model(wrapped["text_encoder"]) if train_te else text_encoder
        return _pipeline(tokenizer, te, vae, transformer_now, scheduler)

    def encode(prompts: list[str]):
        with torch.set_grad_enabled(train_te):
            return encode_text(tokenizer, wrapped.get("text_encoder", text_encoder), prompts, cfg.text_max_length)

    for m in wrapped.values():
        m.train()
    bar = tqdm(initial=start, total=cfg.steps, desc="train", disable=not (progress and acc.is_main_process))
    batches = training_batches(
        cfg.seed,
        cfg.batch_size,
        start,
        cfg.steps,
        acc.process_index,
        cfg.data_workers,
        int(os.environ.get("LOCAL_WORLD_SIZE", acc.num_processes)),
        task_weights=cfg.task_weights,
    )
    with GracefulInterrupt() as interrupt:
        for step, (prompts, pixels) in batches:
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:  # the scheduled lr, x the group's scale (new_block_lr_scale)
                g["lr"] = lr * g.get("lr_scale", 1.0)
            gen = torch.Generator().manual_seed(stream_seed(cfg.seed, step, acc.process_index, NOISE_STREAM))
            with torch.no_grad():
                latents = vae.encode(pixels.to(acc.device)).latent * scale
            result = training_step(
                wrapped["transformer"],
                optimizer,
                latents,
                prompts,
                gen,
                cfg.flow,
                cfg.caption_dropout,
                cfg.grad_clip,
                encode,
                params,
                acc,
            )
            if ema is not None:
                ema.step(transformer.parameters())
            if acc.is_main_process:
                rec = log.step(
                    step + 1, cfg.batch_size * acc.num_processes, loss=result.loss, lr=lr, grad_norm=result.grad_norm
                )
                bar.update()
                bar.set_postfix(loss=f"{rec['loss']:.4f}", ips=f"{rec['images_per_s']:.0f}")
                if callbacks.on_step is not None:
                    callbacks.on_step(step + 1, rec)
                if callbacks.evaluates_at(step + 1, cfg.steps):
                    pipe = current_pipeline()
                    with log.paused(), _evaluation_mode(pipe.transformer, pipe.text_encoder), torch.no_grad():
                        callbacks.evaluate(step + 1, pipe)
            stop = interrupt.requested
            if (step + 1) % cfg.checkpoint_every == 0 or stop:
                save_checkpoint(step + 1)
            if stop:
                raise KeyboardInterrupt(f"interrupted; checkpoint saved at step {step + 1} in {ckpt}")
    bar.close()
    if cfg.steps % cfg.checkpoint_every != 0 or not ckpt.is_dir():  # the loop saved the last step otherwise
        save_checkpoint(cfg.steps)

    if acc.is_main_process:
        with atomic_directory(out / "pipeline") as tmp:
            current_pipeline().save_pretrained(tmp)
    acc.wait_for_everyone()
    return out / "pipeline"


def checkpoint_pipeline(run_dir: str | Path, ema: bool = True):
    """The model of a run at its latest checkpoint (`run_dir/checkpoint`), e.g. one still training:
    the run's own components (`train_config.yaml`: a frozen text encoder is rebuilt exactly as the
    run built it) with the checkpoint's weights, EMA weights when `ema` and the run keeps them.

    Returns (SanaPipeline, step). Raises ValueError when `run_dir` holds no checkpoint.
    """
    import json

    from diffusers.training_utils import EMAModel

    from lab.config import load_config

    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint"
    if not (run_dir / "train_config.yaml").is_file() or not (ckpt / "state.json").is_file():
        raise ValueError(
            f"{run_dir} holds no training checkpoint; expected the --out of `lab train` after a checkpoint"
        )
    cfg = load_config(TrainConfig, run_dir / "train_config.yaml")
    quiet_hub_logging()
    tokenizer, text_encoder, vae, transformer, scheduler, train_te = _components(cfg)
    averaged = None
    if ema and (ckpt / "ema.pt").is_file():
        averaged = EMAModel(transformer.parameters(), decay=cfg.ema_decay)
    _restore_weights(ckpt, _trained_modules(transformer, text_encoder, train_te), averaged)
    if averaged is not None:
        averaged.copy_to(transformer.parameters())
    pipe = _pipeline(tokenizer, text_encoder, vae, transformer, scheduler)
    return pipe, json.loads((ckpt / "state.json").read_text())["step"]
