"""The growth experiment (SANA 1.5 Fig. 2 and its initialisation table), run by notebooks/growth.ipynb.

    cfg = load_config(GrowthExperimentConfig, "configs/growth_quick.yaml")
    metrics = run_growth_experiment("checkpoints/S", "reports/growth/runs", cfg)

From a trained shallow model (S) it builds deep models (L = 3x the blocks) in several ways — the
arms of `ARMS`: grown by partial preservation (the paper's choice, dropping S's last two blocks),
partial preservation keeping every block, cyclic and block replication, and L from scratch
with S's frozen text encoder and VAE — then trains each on the same data stream with the same
optimizer and steps (`lab.train.train`), measuring training loss at every step and GenEval-mini
every `eval_every` steps.

Evaluating mid-run resumes the trainer in segments (train to step k, evaluate, train on to
2k, ...). The trainer resumes bit-exactly, and the experiment uses a constant learning rate after
warm-up (SANA 1.5's schedule), so segments give the same weights as one uninterrupted run.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from lab import world
from lab.checkpoint import atomic_directory
from lab.config import config_dict
from lab.growth import GROWTH_FILE, STRATEGIES, default_keep, grow_pipeline_dir
from lab.model import VAESize, build_pipeline, build_vae, load_pipeline, quiet_hub_logging
from lab.runlog import read_log
from lab.sampling import SamplerConfig

SCRATCH = "scratch"  # the arm trained from a fresh transformer
CONSTANT_LR = 1.0  # TrainConfig.min_lr_ratio of 1: no decay after warm-up, whatever the total steps


@dataclass(frozen=True)
class Arm:
    """One way to initialise the deep model."""

    strategy: str  # SCRATCH or a lab.growth.STRATEGIES name
    label: str  # legend text
    keep_all: bool = False  # keep every source block instead of the strategy's default
    zero_init_copies: bool = False  # replication strategies: copies start as identity


ARMS: dict[str, Arm] = {
    "grown": Arm("partial_preservation", "grown: partial preservation (paper)"),
    SCRATCH: Arm(SCRATCH, "from scratch"),
    "grown_keep_all": Arm("partial_preservation", "partial preservation, keep all", keep_all=True),
    "cyclic": Arm("cyclic", "cyclic replication"),
    "block_replication": Arm("block_replication", "block replication"),
}
COMPARISON_ARMS = ("grown", SCRATCH)  # part (a): grown L vs L from scratch
STRATEGY_ARMS = ("grown", "grown_keep_all", "cyclic", "block_replication")  # part (b)

# The paper's claims, as checked on the full run (issue targets).
LOSS_STEPS_TARGET = 0.4  # grown L reaches from-scratch L's final loss within this fraction of the steps
GENEVAL_GAIN_TARGET = 0.05  # grown L's GenEval-mini exceeds the source's by at least this


@dataclass(frozen=True)
class GrowthExperimentConfig:
    """One run of the experiment. YAML: configs/growth_quick.yaml, configs/growth_full.yaml."""

    growth_factor: int = 3  # the deep model has growth_factor x the source's blocks (L = 3 x S)
    arms: tuple[str, ...] = tuple(ARMS)  # which initialisations to train (keys of ARMS)
    steps: int = 400  # training steps of every arm
    eval_every: int = 100  # GenEval-mini at step 0 and every this many steps
    batch_size: int = 32
    optimizer: str = "adamw"  # lab.optim.OPTIMIZERS
    lr: float = 3e-4  # constant after warm-up (SANA 1.5), so evaluating mid-run changes nothing
    warmup_steps: int = 50
    grad_clip: float = 1.0
    caption_dropout: float = 0.1
    ema_decay: float = 0.0  # 0 = off: every arm is judged on its raw weights
    seed: int = 0  # data, noise and new-block seeds: identical for every arm
    eval_prompts: str = "quick"  # prompt set judged during training
    eval_prompt_limit: int = 0  # 0 = the whole set; else this many evenly spaced prompts
    images_per_prompt: int = 1
    sample_steps: int = 20  # DPM-Solver steps per image
    guidance_scale: float = 4.5
    sample_batch_size: int = 64
    final_prompts: str = ""  # a set judged once at the end, for the source and `final_arms` ("" = none)
    final_arms: tuple[str, ...] = ("grown",)
    final_images_per_prompt: int = 4
    loss_window: int = 20  # steps in the moving average that compares noisy losses

    def __post_init__(self):
        unknown = [a for a in (*self.arms, *self.final_arms) if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arms {unknown}; expected some of {list(ARMS)}")
        if self.steps < 1 or self.eval_every < 1:
            raise ValueError(f"steps={self.steps} and eval_every={self.eval_every} must both be >= 1")
        if self.growth_factor < 2:
            raise ValueError(f"growth_factor={self.growth_factor} must be >= 2 (the deep model has more blocks)")

    @property
    def sampler(self) -> SamplerConfig:
        return SamplerConfig(self.sample_steps, self.guidance_scale, self.sample_batch_size)

    def eval_steps(self) -> list[int]:
        """Steps at which every arm is evaluated: 0, eval_every, 2 eval_every, ..., steps."""
        return sorted({*range(0, self.steps, self.eval_every), self.steps})


# ----------------------------------------------------------------------------------------------
# Sources and initial models

QUICK_SOURCE_LAYERS = 4  # quick mode's stand-in for S: deep enough that "all but the last two" keeps two
QUICK_VAE = VAESize(block_out_channels=(8, 8, 16, 16), decoder_layers_per_block=(1, 1, 1, 1))


def quick_source(directory: str | Path | None = None, seed: int = 0) -> Path:
    """An untrained tiny pipeline (4 blocks of the `tiny` width, a tiny VAE) for quick runs when
    no trained S exists; saved to `directory` (default: a temporary one, removed at exit). Returns its path."""
    from lab.experiments import temporary_directory
    from lab.model import SIZES

    quiet_hub_logging()
    directory = Path(directory) if directory is not None else temporary_directory("growth-source-")
    torch.manual_seed(seed)
    size = replace(SIZES["tiny"], num_layers=QUICK_SOURCE_LAYERS)
    pipe = build_pipeline(size, vae=build_vae(QUICK_VAE))
    path = directory / "source"
    with atomic_directory(path) as tmp:
        pipe.save_pretrained(tmp)
    return path


MODES = ("quick", "full")


def resolve_source(source: str | Path, mode: str, scratch_dir: str | Path | None = None) -> Path:
    """The source pipeline to grow: `source` when it exists; in quick mode a `quick_source` built
    in `scratch_dir` when it does not (so the notebook runs anywhere); in full mode an error."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; expected one of {MODES}")
    source = Path(source)
    if (source / "model_index.json").is_file():
        return source
    if mode == "quick":
        return quick_source(scratch_dir)
    raise FileNotFoundError(f"no trained source pipeline at {source} (full mode needs one: train S with "
                            f"`lab train --config configs/S.yaml --out runs/S` and export it to checkpoints/S)")


def fresh_pipeline_dir(source: str | Path, out: str | Path, num_layers: int, seed: int = 0) -> Path:
    """The from-scratch arm's start: the source's tokenizer, text encoder, VAE and scheduler with
    a freshly initialised transformer of the source's shape and `num_layers` blocks."""
    from diffusers import SanaPipeline, SanaTransformer2DModel

    pipe = load_pipeline(source)
    torch.manual_seed(seed)
    fresh = SanaTransformer2DModel.from_config({**pipe.transformer.config, "num_layers": num_layers})
    pipe = SanaPipeline(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae,
                        transformer=fresh, scheduler=pipe.scheduler)
    out = Path(out)
    with atomic_directory(out) as tmp:
        pipe.save_pretrained(tmp)
    return out


def initial_pipeline_dir(arm: Arm, source: str | Path, out: str | Path, num_layers: int, seed: int = 0) -> Path:
    """Writes the arm's step-0 pipeline to `out` (grown from `source`, or fresh for SCRATCH)."""
    if arm.strategy == SCRATCH:
        return fresh_pipeline_dir(source, out, num_layers, seed)
    if arm.strategy not in STRATEGIES:
        raise ValueError(f"arm strategy {arm.strategy!r}; expected {SCRATCH!r} or one of {STRATEGIES}")
    source_layers = load_pipeline(source).transformer.config.num_layers
    keep = source_layers if arm.keep_all else None
    return grow_pipeline_dir(source, out, num_layers, arm.strategy, keep, arm.zero_init_copies, seed)


# ----------------------------------------------------------------------------------------------
# Running


def eval_prompt_set(name: str, limit: int = 0) -> list[world.Prompt]:
    """A stored prompt set, or `limit` evenly spaced prompts of it (covering every task)."""
    prompts = world.load_prompts(name)
    if limit <= 0 or limit >= len(prompts):
        return prompts
    return [prompts[i] for i in np.linspace(0, len(prompts) - 1, limit).round().astype(int)]


def _geneval(pipe_dir: Path, prompts, images_per_prompt: int, cfg: GrowthExperimentConfig) -> dict:
    from lab.evaluation import evaluate_pipeline

    report, _ = evaluate_pipeline(load_pipeline(pipe_dir), prompts, images_per_prompt, cfg.sampler, cfg.seed,
                                  progress=False)
    return {"overall": report.overall, "task_accuracy": report.task_accuracy}


def train_config(cfg: GrowthExperimentConfig, init_from: str | Path, steps: int):
    """The `TrainConfig` every arm trains with (identical but for `init_from`)."""
    from lab.train import TrainConfig

    return TrainConfig(init_from=str(init_from), steps=steps, batch_size=cfg.batch_size, optimizer=cfg.optimizer,
                       lr=cfg.lr, warmup_steps=cfg.warmup_steps, min_lr_ratio=CONSTANT_LR, grad_clip=cfg.grad_clip,
                       caption_dropout=cfg.caption_dropout, ema_decay=cfg.ema_decay, seed=cfg.seed,
                       checkpoint_every=cfg.eval_every)


def run_arm(name: str, source: str | Path, run_dir: str | Path, cfg: GrowthExperimentConfig,
            progress: bool = False) -> dict:
    """Builds one arm's deep model, trains it in `eval_every` segments and evaluates after each.

    Writes `run_dir/init` (the step-0 pipeline) and `run_dir/train` (the trainer's run directory).
    Returns {"label", "strategy", "keep", "num_layers", "params", "loss": [[step, loss], ...],
    "geneval": [[step, overall], ...], "task_accuracy": {task: acc} at the end, "train_seconds"}.
    """
    from lab.train import train

    arm, run_dir = ARMS[name], Path(run_dir)
    source_layers = load_pipeline(source).transformer.config.num_layers
    num_layers = cfg.growth_factor * source_layers
    shutil.rmtree(run_dir, ignore_errors=True)  # a rerun starts over: stale checkpoints would be resumed
    init = initial_pipeline_dir(arm, source, run_dir / "init", num_layers, cfg.seed)
    prompts = eval_prompt_set(cfg.eval_prompts, cfg.eval_prompt_limit)
    evals = [[0, _geneval(init, prompts, cfg.images_per_prompt, cfg)]]
    seconds = 0.0
    for step in cfg.eval_steps()[1:]:
        start = time.perf_counter()
        pipe_dir = train(train_config(cfg, init, step), run_dir / "train", progress=progress)
        seconds += time.perf_counter() - start
        evals.append([step, _geneval(pipe_dir, prompts, cfg.images_per_prompt, cfg)])
    transformer = load_pipeline(init).transformer
    keep = None
    if arm.strategy != SCRATCH:
        keep = source_layers if arm.keep_all else default_keep(source_layers, arm.strategy)
    result = {
        "label": arm.label, "strategy": arm.strategy, "keep": keep, "num_layers": transformer.config.num_layers,
        "params": sum(p.numel() for p in transformer.parameters()),
        "loss": [[r["step"], r["loss"]] for r in read_log(run_dir / "train" / "train_log.jsonl")],
        "geneval": [[s, e["overall"]] for s, e in evals], "task_accuracy": evals[-1][1]["task_accuracy"],
        "train_seconds": seconds, "pipeline": str(run_dir / "train" / "pipeline"),
    }
    if (init / GROWTH_FILE).is_file():
        result["growth"] = str(init / GROWTH_FILE)
    if cfg.final_prompts and name in cfg.final_arms:
        final = _geneval(run_dir / "train" / "pipeline", cfg.final_prompts, cfg.final_images_per_prompt, cfg)
        result["final_geneval"] = final
    return result


def run_growth_experiment(source: str | Path, out_dir: str | Path, cfg: GrowthExperimentConfig = GrowthExperimentConfig(),
                          progress: bool = False) -> dict:
    """Runs every arm of `cfg.arms` from the pipeline in `source`, under `out_dir/<arm>`.

    Returns {"config", "source": {"path", "num_layers", "geneval", "final_geneval"?},
    "runs": {arm: run_arm(...)}, "summary": summarize(...)}; write it with
    `lab.provenance.write_json`.
    """
    quiet_hub_logging()
    source, out_dir = Path(source), Path(out_dir)
    prompts = eval_prompt_set(cfg.eval_prompts, cfg.eval_prompt_limit)
    source_info = {"path": str(source), "num_layers": load_pipeline(source).transformer.config.num_layers,
                   "geneval": _geneval(source, prompts, cfg.images_per_prompt, cfg)["overall"]}
    if cfg.final_prompts:
        source_info["final_geneval"] = _geneval(source, cfg.final_prompts, cfg.final_images_per_prompt, cfg)
    runs = {name: run_arm(name, source, out_dir / name, cfg, progress) for name in cfg.arms}
    metrics = {"config": config_dict(cfg), "source": source_info, "runs": runs}
    metrics["summary"] = summarize(metrics, cfg.loss_window)
    return metrics


# ----------------------------------------------------------------------------------------------
# Analysis (no side effects)


def moving_average(values, window: int) -> np.ndarray:
    """Trailing mean over the last `window` values (fewer at the start), same length as `values`."""
    values = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (sums[idx] - sums[lo]) / (idx - lo)


def steps_to_reach(curve, target: float, window: int) -> int | None:
    """First step at which the moving-average loss of `curve` ([[step, loss], ...]) is <= target;
    None if it never is."""
    if not curve:
        return None
    steps, losses = np.asarray(curve, dtype=float).T
    hits = np.flatnonzero(moving_average(losses, window) <= target)
    return int(steps[hits[0]]) if hits.size else None


def summarize(metrics: dict, window: int) -> dict:
    """The numbers the paper's claims are checked against: for each grown arm, the steps it needs
    to reach from-scratch L's final (moving-average) loss and their fraction of the run; the
    final GenEval-mini of each arm minus the source's; and the two targets, where measurable."""
    runs, source = metrics["runs"], metrics["source"]
    summary: dict = {"loss_steps_target": LOSS_STEPS_TARGET, "geneval_gain_target": GENEVAL_GAIN_TARGET}
    scratch_loss = None
    if SCRATCH in runs and runs[SCRATCH]["loss"]:
        scratch_loss = float(moving_average([v for _, v in runs[SCRATCH]["loss"]], window)[-1])
        summary["scratch_final_loss"] = scratch_loss
    per_arm = {}
    for name, run in runs.items():
        total = run["loss"][-1][0] if run["loss"] else 0
        entry = {"final_loss": float(moving_average([v for _, v in run["loss"]], window)[-1]) if run["loss"] else None,
                 "geneval": run["geneval"][-1][1], "geneval_gain_over_source": run["geneval"][-1][1] - source["geneval"]}
        if "final_geneval" in run and "final_geneval" in source:
            entry["final_geneval_gain_over_source"] = (run["final_geneval"]["overall"]
                                                       - source["final_geneval"]["overall"])
        if scratch_loss is not None and name != SCRATCH:
            reached = steps_to_reach(run["loss"], scratch_loss, window)
            entry["steps_to_scratch_final_loss"] = reached
            entry["fraction_of_steps"] = None if reached is None else reached / total
        per_arm[name] = entry
    summary["arms"] = per_arm
    grown = per_arm.get("grown")
    if grown is not None and scratch_loss is not None:  # never reaching it misses the target too
        fraction = grown["fraction_of_steps"]
        summary["loss_target_met"] = fraction is not None and fraction <= LOSS_STEPS_TARGET
    if grown is not None:
        gain = grown.get("final_geneval_gain_over_source", grown["geneval_gain_over_source"])
        summary["geneval_target_met"] = gain >= GENEVAL_GAIN_TARGET
    return summary


def overall_of_first_images(report: dict, images_per_prompt: int) -> float:
    """GenEval-mini overall (mean of the task accuracies) of a stored report (`geneval_<set>.json`)
    counting only each prompt's first `images_per_prompt` images (seeds 0..n-1)."""
    by_task: dict[str, list[bool]] = {}
    seen: dict[int, int] = {}  # images of a prompt are stored in seed order
    for image in report["images"]:
        k = seen[image["prompt_index"]] = seen.get(image["prompt_index"], -1) + 1
        if k < images_per_prompt:
            by_task.setdefault(image["tag"], []).append(image["correct"])
    return float(np.mean([np.mean(v) for v in by_task.values()]))


def shipped_geneval_gain(source: str | Path, grown: str | Path, prompts: str = "full") -> dict | None:
    """The full-set target on shipped models: GenEval-mini of the grown model (e.g. checkpoints/L,
    trained longer than the experiment's arms) against its source's, read from the
    `geneval_<prompts>.json` their model cards were written from. Where the two were scored with
    different numbers of images per prompt, both are scored on each prompt's first n images (n the
    smaller number; their seeds differ, so the two are independent draws of the same protocol).
    Returns {"source", "grown", "gain", "target_met",
    "images_per_prompt"}, or None when either file is missing."""
    import json

    files = [Path(source, f"geneval_{prompts}.json"), Path(grown, f"geneval_{prompts}.json")]
    if not all(f.is_file() for f in files):
        return None
    src, big = (json.loads(f.read_text()) for f in files)
    n = min(src["images_per_prompt"], big["images_per_prompt"])
    src_score, big_score = (r["overall"] if r["images_per_prompt"] == n else overall_of_first_images(r, n)
                            for r in (src, big))
    gain = big_score - src_score
    return {"source": src_score, "grown": big_score, "gain": gain, "target_met": gain >= GENEVAL_GAIN_TARGET,
            "images_per_prompt": n}


def curves(metrics: dict, arms, key: str) -> dict[str, list]:
    """{arm: metrics["runs"][arm][key]} for the arms of `arms` that ran (key: "loss" or "geneval")."""
    return {a: metrics["runs"][a][key] for a in arms if a in metrics["runs"]}


def summary_table(metrics: dict) -> str:
    """A markdown table of `metrics["summary"]`: one row per arm."""
    summary, runs = metrics["summary"], metrics["runs"]
    head = ("| arm | blocks (kept) | final loss | steps to scratch's final loss | GenEval-mini | vs source |\n"
            "|---|---|---:|---:|---:|---:|\n")
    rows = []
    for name, e in summary["arms"].items():
        run = runs[name]
        kept = f"{run['num_layers']} ({run['keep']})" if run["keep"] is not None else f"{run['num_layers']} (-)"
        reached = e.get("steps_to_scratch_final_loss")
        frac = e.get("fraction_of_steps")
        reach = "-" if name == SCRATCH else ("never" if reached is None else f"{reached} ({frac:.0%})")
        loss = "-" if e["final_loss"] is None else f"{e['final_loss']:.4f}"
        rows.append(f"| {run['label']} | {kept} | {loss} | {reach} | {e['geneval']:.3f} | "
                    f"{e['geneval_gain_over_source']:+.3f} |")
    return head + "\n".join(rows) + "\n"
