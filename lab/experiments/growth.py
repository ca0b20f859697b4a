"""The growth experiment (SANA 1.5 Fig. 2 and its initialisation table), run by notebooks/growth.ipynb.

    cfg = preset(GrowthExperimentConfig, "growth", "full")
    metrics = run(cfg, "reports/growth")
    figs = figures(metrics)

From a trained shallow model (S) it builds deep models (L = 3x the blocks) in several ways — the
arms of `ARMS`: grown by partial preservation (the paper's choice, dropping S's last two blocks),
partial preservation keeping every block, cyclic and block replication, and L from scratch
with S's frozen text encoder and VAE — then trains each on the same data stream with the same
optimizer and steps (`lab.train.train`, `GrowthExperimentConfig.train`), measuring training loss at
every step and GenEval-mini every `eval_every` steps, inside one run (`lab.train.TrainCallbacks`), so
the learning-rate schedule is the config's: the presets keep it constant after warm-up (SANA 1.5's
choice, `min_lr_ratio: 1.0`); any other decays by a cosine over the whole run.

Part (c) asks whether the blocks growth adds come to carry weight: arms that train them at a higher
lr (`new_block_lr_scale`) or start their inner weights at PyTorch's default scale, and, with
`importance_prompts`, each trained arm's block importance, per block and for the added blocks taken
together (`lab.pruning.span_importance`) against the source blocks that growth dropped.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lab.config import config_dict
from lab.evaluation import evenly_spaced_prompts
from lab.growth import (
    DEFAULT_INIT,
    GROWTH_FILE,
    INIT_STD,
    STRATEGIES,
    added_blocks,
    default_keep,
    grow_pipeline_dir,
    growth_plan,
)
from lab.model import load_pipeline, quiet_hub_logging
from lab.runlog import read_log, training_seconds
from lab.sampling import SamplerConfig
from lab.train import TrainCallbacks, TrainConfig
from lab.zoo import fresh_pipeline_dir

METRICS_FILE = "growth_metrics.json"
SCRATCH = "scratch"  # the arm trained from a fresh transformer
HOW_TO_MAKE_S = (
    "train S with `lab train --config configs/S.yaml --out runs/S` and export it to checkpoints/S "
    "(`lab export runs/S --name S`)"
)


@dataclass(frozen=True)
class Arm:
    """One way to initialise the deep model."""

    strategy: str  # SCRATCH or a lab.growth.STRATEGIES name
    label: str  # legend text
    keep_all: bool = False  # keep every source block instead of the strategy's default
    zero_init_copies: bool = False  # replication strategies: copies start as identity
    scaled_new_lr: bool = False  # the added blocks train at lr x the config's new_block_lr_scale
    default_init: bool = False  # the added blocks' weights at PyTorch's default scale (lab.growth.DEFAULT_INIT)


ARMS: dict[str, Arm] = {
    "grown": Arm("partial_preservation", "grown: partial preservation (paper)"),
    SCRATCH: Arm(SCRATCH, "from scratch"),
    "grown_keep_all": Arm("partial_preservation", "partial preservation, keep all", keep_all=True),
    "cyclic": Arm("cyclic", "cyclic replication"),
    "block_replication": Arm("block_replication", "block replication"),
    "grown_new_lr": Arm("partial_preservation", "grown, added blocks at a higher lr", scaled_new_lr=True),
    "grown_default_init": Arm("partial_preservation", "grown, added blocks at PyTorch's init scale", default_init=True),
    "grown_default_init_new_lr": Arm(
        "partial_preservation",
        "grown, added blocks at PyTorch's init scale, higher lr",
        scaled_new_lr=True,
        default_init=True,
    ),
}
COMPARISON_ARMS = ("grown", SCRATCH)  # part (a): grown L vs L from scratch
STRATEGY_ARMS = ("grown", "grown_keep_all", "cyclic", "block_replication")  # part (b)
ADDED_BLOCK_ARMS = ("grown", "grown_new_lr", "grown_default_init", "grown_default_init_new_lr")  # part (c): do the
# added blocks come to carry weight?

# The paper's claims, as checked on the full run (issue targets).
LOSS_STEPS_TARGET = 0.4  # grown L reaches from-scratch L's final loss within this fraction of the steps
GENEVAL_GAIN_TARGET = 0.05  # grown L's GenEval-mini exceeds the source's by at least this
ADDED_IMPORTANCE_TARGET = 0.10  # the added blocks' mean importance, as a fraction of the kept blocks' (issue 17)


def _arm_training() -> TrainConfig:
    # SANA 1.5 trains on at a constant lr after warm-up; no EMA, so every arm is judged on its raw weights
    return TrainConfig(steps=400, batch_size=32, lr=3e-4, warmup_steps=50, min_lr_ratio=1.0, ema_decay=0.0)


@dataclass(frozen=True)
class GrowthExperimentConfig:
    """One run of the experiment. Presets: configs/experiments/growth.yaml (quick, full)."""

    source: str = "checkpoints/S"  # the trained shallow model grown
    stand_in: bool = False  # grow an untrained tiny stand-in when `source` does not exist (quick runs)
    shipped: str = "checkpoints/L"  # the shipped grown model, trained longer: the full-set target is read from
    # its card and the source's ("" = skip)
    work_dir: str = "runs/growth"  # where the arms train ("" = a temporary directory)
    growth_factor: int = 3  # the deep model has growth_factor x the source's blocks (L = 3 x S)
    arms: tuple[str, ...] = tuple(ARMS)  # which initialisations to train (keys of ARMS)
    train: TrainConfig = field(default_factory=_arm_training)  # every arm's training (init_from set per arm);
    # its seed also draws the new blocks and GenEval-mini's noise: identical for every arm
    eval_every: int = 100  # GenEval-mini at step 0, every this many steps and at the end
    eval_prompts: str = "quick"  # prompt set judged during training
    eval_prompt_limit: int = 0  # 0 = the whole set; else this many evenly spaced prompts
    images_per_prompt: int = 1
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # GenEval-mini's generation
    final_prompts: str = ""  # a set judged once at the end, for the source and `final_arms` ("" = none)
    final_arms: tuple[str, ...] = ("grown",)
    final_images_per_prompt: int = 4
    loss_window: int = 20  # steps in the moving average that compares noisy losses
    new_block_lr_scale: float = 10.0  # the grown_new_lr arm: its added blocks train at lr x this
    importance_prompts: int = 0  # block importance of every trained arm over this many evenly spaced
    # `eval_prompts` sampled by `sampler` (0 = not measured)

    def __post_init__(self):
        unknown = [a for a in (*self.arms, *self.final_arms) if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arms {unknown}; expected some of {list(ARMS)}")
        if self.train.steps < 1 or self.eval_every < 1:
            raise ValueError(f"train.steps={self.train.steps} and eval_every={self.eval_every} must both be >= 1")
        if self.growth_factor < 2:
            raise ValueError(f"growth_factor={self.growth_factor} must be >= 2 (the deep model has more blocks)")
        if self.importance_prompts < 0:
            raise ValueError(f"importance_prompts={self.importance_prompts} must be >= 0 (0 = not measured)")


Config = GrowthExperimentConfig


# ----------------------------------------------------------------------------------------------
# Initial models


def initial_pipeline_dir(arm: Arm, source: str | Path, out: str | Path, num_layers: int, seed: int = 0) -> Path:
    """Writes the arm's step-0 pipeline to `out` (grown from `source`, or fresh for SCRATCH)."""
    if arm.strategy == SCRATCH:
        return fresh_pipeline_dir(source, out, num_layers, seed)
    if arm.strategy not in STRATEGIES:
        raise ValueError(f"arm strategy {arm.strategy!r}; expected {SCRATCH!r} or one of {STRATEGIES}")
    source_layers = load_pipeline(source).transformer.config.num_layers
    keep = source_layers if arm.keep_all else None
    init_std = DEFAULT_INIT if arm.default_init else INIT_STD
    return grow_pipeline_dir(source, out, num_layers, arm.strategy, keep, arm.zero_init_copies, seed, init_std)


def block_plans(cfg: GrowthExperimentConfig, source_layers: int) -> dict[str, list]:
    """Each grown arm's blocks by the source block they start from (None = a new identity block)."""
    plans = {}
    for name in cfg.arms:
        arm = ARMS[name]
        if arm.strategy != SCRATCH:
            keep = source_layers if arm.keep_all else None
            plans[name] = growth_plan(source_layers, cfg.growth_factor * source_layers, arm.strategy, keep)
    return plans


# ----------------------------------------------------------------------------------------------
# Running


def _geneval(pipe, prompts, images_per_prompt: int, cfg: GrowthExperimentConfig) -> dict:
    from lab.evaluation import evaluate_pipeline

    report, _ = evaluate_pipeline(pipe, prompts, images_per_prompt, cfg.sampler, cfg.train.seed, progress=False)
    return {"overall": report.overall, "task_accuracy": report.task_accuracy}


def _importance(pipe, cfg: GrowthExperimentConfig, span: tuple[int, int] | None = None):
    """The pipeline's ImportanceTable on `importance_prompts` prompts, per block; with `span`
    (start, stop), of blocks start..stop-1 taken together (`lab.pruning.span_importance`)."""
    from lab.pruning import block_importance, span_importance

    prompts = evenly_spaced_prompts(cfg.eval_prompts, cfg.importance_prompts)
    s = cfg.sampler
    kwargs = dict(timesteps=s.steps, guidance_scale=s.guidance_scale, seed=cfg.train.seed, batch_size=s.batch_size)
    if span is None:
        return block_importance(pipe, prompts, progress=False, **kwargs)
    return span_importance(pipe, *span, prompts, progress=False, **kwargs)


def _contiguous(blocks: list[int]) -> tuple[int, int] | None:
    """(start, stop) when `blocks` are consecutive indices, else None."""
    return (blocks[0], blocks[-1] + 1) if blocks and blocks == list(range(blocks[0], blocks[-1] + 1)) else None


def run_arm(
    name: str, source: str | Path, run_dir: str | Path, cfg: GrowthExperimentConfig, progress: bool = False
) -> dict:
    """Builds one arm's deep model, trains it and evaluates it at step 0, every `eval_every` steps
    and at the end (a `lab.train.TrainCallbacks` hook: one uninterrupted run).

    Writes `run_dir/init` (the step-0 pipeline) and `run_dir/train` (the trainer's run directory).
    Returns {"label", "strategy", "keep", "num_layers", "params", "loss": [[step, loss], ...],
    "geneval": [[step, overall], ...], "task_accuracy": {task: acc} at the end, "train_seconds",
    "new_block_lr_scale"}; grown arms add "added_blocks" (indices), and with `importance_prompts`
    every arm adds "importance" (the trained model's `ImportanceTable.to_json()`) and, where the
    added blocks are consecutive, "added_span_importance" (theirs taken together).
    """
    from lab.train import train

    arm, run_dir = ARMS[name], Path(run_dir)
    source_layers = load_pipeline(source).transformer.config.num_layers
    num_layers = cfg.growth_factor * source_layers
    shutil.rmtree(run_dir, ignore_errors=True)  # a rerun starts over: stale checkpoints would be resumed
    init = initial_pipeline_dir(arm, source, run_dir / "init", num_layers, cfg.train.seed)
    prompts = evenly_spaced_prompts(cfg.eval_prompts, cfg.eval_prompt_limit)
    start = load_pipeline(init)
    evals = [[0, _geneval(start, prompts, cfg.images_per_prompt, cfg)]]

    def evaluate(step: int, pipe) -> None:
        evals.append([step, _geneval(pipe, prompts, cfg.images_per_prompt, cfg)])

    scale = cfg.new_block_lr_scale if arm.scaled_new_lr else cfg.train.new_block_lr_scale
    trained = train(
        replace(cfg.train, init_from=str(init), new_block_lr_scale=scale),
        run_dir / "train",
        progress=progress,
        callbacks=TrainCallbacks(evaluate=evaluate, evaluate_every=cfg.eval_every),
    )
    transformer = start.transformer
    keep = None
    if arm.strategy != SCRATCH:
        keep = source_layers if arm.keep_all else default_keep(source_layers, arm.strategy)
    log = run_dir / "train" / "train_log.jsonl"
    result = {
        "label": f"{arm.label} (x{scale:g})" if arm.scaled_new_lr else arm.label,
        "strategy": arm.strategy,
        "keep": keep,
        "num_layers": transformer.config.num_layers,
        "params": sum(p.numel() for p in transformer.parameters()),
        "loss": [[r["step"], r["loss"]] for r in read_log(log)],
        "geneval": [[s, e["overall"]] for s, e in evals],
        "task_accuracy": evals[-1][1]["task_accuracy"],
        "train_seconds": training_seconds(log, cfg.train.batch_size),
        "pipeline": str(trained),
        "new_block_lr_scale": scale,
    }
    if (init / GROWTH_FILE).is_file():
        result["growth"] = str(init / GROWTH_FILE)
        result["added_blocks"] = added_blocks(init)
    final = load_pipeline(trained) if cfg.importance_prompts or (cfg.final_prompts and name in cfg.final_arms) else None
    if cfg.importance_prompts:
        result["importance"] = _importance(final, cfg).to_json()
        span = _contiguous(result.get("added_blocks", []))
        if span is not None:  # partial preservation: the added blocks follow the kept ones
            result["added_span_importance"] = float(_importance(final, cfg, span).mean[span[0]])
    if cfg.final_prompts and name in cfg.final_arms:
        result["final_geneval"] = _geneval(final, cfg.final_prompts, cfg.final_images_per_prompt, cfg)
    return result


def run_arms(source: str | Path, work: str | Path, cfg: GrowthExperimentConfig, progress: bool = False) -> dict:
    """Runs every arm of `cfg.arms` from the pipeline in `source`, under `work/<arm>`.

    Returns {"config", "source": {"path", "num_layers", "geneval", "final_geneval"?,
    "dropped_span_importance"? (with `importance_prompts`: the source blocks partial preservation
    drops, taken together)}, "runs": {arm: run_arm(...)}, "summary": summarize(...)}.
    """
    quiet_hub_logging()
    source, work = Path(source), Path(work)
    prompts = evenly_spaced_prompts(cfg.eval_prompts, cfg.eval_prompt_limit)
    pipe = load_pipeline(source)
    source_info = {
        "path": str(source),
        "num_layers": pipe.transformer.config.num_layers,
        "geneval": _geneval(pipe, prompts, cfg.images_per_prompt, cfg)["overall"],
    }
    if cfg.final_prompts:
        source_info["final_geneval"] = _geneval(pipe, cfg.final_prompts, cfg.final_images_per_prompt, cfg)
    keep = default_keep(source_info["num_layers"], "partial_preservation")
    if cfg.importance_prompts and keep < source_info["num_layers"]:
        span = (keep, source_info["num_layers"])
        source_info["dropped_span_importance"] = float(_importance(pipe, cfg, span).mean[keep])
    runs = {name: run_arm(name, source, work / name, cfg, progress) for name in cfg.arms}
    metrics = {"config": config_dict(cfg), "source": source_info, "runs": runs}
    metrics["summary"] = summarize(metrics, cfg.loss_window)
    return metrics


def run(
    cfg: GrowthExperimentConfig, out: str | Path | None = None, mode: str | None = None, progress: bool = False
) -> dict:
    """The whole experiment: every arm (`run_arms`) from `cfg.source` (or its stand-in) in
    `cfg.work_dir`, plus the full-set target read from the shipped models' cards (`cfg.shipped`).
    Writes `out/growth_metrics.json` when `out` is given (with `mode`, the preset's name, when
    given). Returns `run_arms`'s metrics, the source's "label", and "shipped" when measured."""
    from lab.experiments import source_label, source_pipeline, work_directory
    from lab.provenance import repo_path, write_json

    work = work_directory(cfg.work_dir, "growth-runs-")
    source = source_pipeline(cfg.source, cfg.stand_in, work, HOW_TO_MAKE_S)
    metrics = run_arms(source, work, cfg, progress)
    metrics["source"]["label"] = source_label(cfg.source, source)
    card = shipped_geneval_gain(source, repo_path(cfg.shipped)) if cfg.shipped else None
    if card is not None:
        metrics["shipped"] = card
    if mode:
        metrics["mode"] = mode
    if out is not None:
        write_json(metrics, Path(out) / METRICS_FILE)
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


LOSS_LEVELS = (0.5, 0.4, 0.35, 0.3, 0.27, 0.25, 0.23, 0.22, 0.21, 0.2, 0.19)  # `steps_to_loss`'s default levels: L's
# training loss falls from ~2 (fresh) or ~0.8 (grown) at step 1 to ~0.2


def steps_to_loss(curves: dict[str, list], levels=LOSS_LEVELS, window: int = 20) -> list[dict]:
    """Growth's speed-up read off training curves: for each loss level, the first step at which
    each run's `window`-step moving-average loss is <= it (`steps_to_reach`).

    Args:
        curves: {run name: [[step, loss], ...]}; the first run is the reference (e.g. the grown one).
            Runs with the same seed and batch see the same data at every step, so the curves pair.
        levels: losses to reach. window: steps in the moving average.
    Returns:
        one row per level: {"loss", "steps": {name: step, or None when the run never reached it},
        "ratio": {name: its steps / the reference's, None where either never reached it}}.
    """
    if not curves:
        raise ValueError("steps_to_loss got no runs; expected {name: [[step, loss], ...]}")
    if window < 1:
        raise ValueError(f"window={window}; expected an integer >= 1")
    reference = next(iter(curves))
    rows = []
    for level in levels:
        steps = {name: steps_to_reach(curve, level, window) for name, curve in curves.items()}
        base = steps[reference]
        ratio = {n: None if base is None or s is None else s / base for n, s in steps.items()}
        rows.append({"loss": float(level), "steps": steps, "ratio": ratio})
    return rows


def steps_to_loss_table(rows: list[dict], last_steps: dict[str, int]) -> str:
    """A markdown table of `steps_to_loss` rows: one column of steps per run and each run's ratio to
    the first; "> N" where a run never reached the level in its `last_steps[name]` steps."""
    names = list(last_steps)
    head = (
        "| loss | "
        + " | ".join(f"steps: {n}" for n in names)
        + " | "
        + " | ".join(f"{n} / {names[0]}" for n in names[1:])
        + " |"
    )
    rule = "|---:|" + "---:|" * (2 * len(names) - 1)
    lines = [head, rule]
    for r in rows:
        steps = [f"> {last_steps[n]}" if r["steps"][n] is None else str(r["steps"][n]) for n in names]
        ratios = []
        for n in names[1:]:
            if r["ratio"][n] is not None:
                ratios.append(f"{r['ratio'][n]:.1f}x")
            elif r["steps"][names[0]] is not None and r["steps"][n] is None:  # a lower bound
                ratios.append(f"> {last_steps[n] / r['steps'][names[0]]:.1f}x")
            else:
                ratios.append("-")
        lines.append(f"| {r['loss']:.2f} | " + " | ".join(steps + ratios) + " |")
    return "\n".join(lines) + "\n"


def added_to_kept_importance(run: dict) -> float | None:
    """The added blocks' mean importance (over blocks and timesteps) divided by the kept blocks', of
    one arm's record (`run_arm`); None when it has no added blocks or no importance table."""
    if not run.get("added_blocks") or "importance" not in run:
        return None
    mean = np.asarray(run["importance"]["mean"])
    added = np.zeros(len(mean), dtype=bool)
    added[run["added_blocks"]] = True
    kept = mean[~added].mean()
    return float(mean[added].mean() / kept) if kept > 0 else None


def summarize(metrics: dict, window: int) -> dict:
    """The numbers the paper's claims are checked against: for each grown arm, the steps it needs
    to reach from-scratch L's final (moving-average) loss and their fraction of the run; the
    final GenEval-mini of each arm minus the source's; the added blocks' importance relative to the
    kept ones' (`added_to_kept_importance`) and, taken together, to the dropped source blocks'
    ("added_span_to_dropped_span"); and the targets, where measurable."""
    runs, source = metrics["runs"], metrics["source"]
    summary: dict = {
        "loss_steps_target": LOSS_STEPS_TARGET,
        "geneval_gain_target": GENEVAL_GAIN_TARGET,
        "added_importance_target": ADDED_IMPORTANCE_TARGET,
    }
    scratch_loss = None
    if SCRATCH in runs and runs[SCRATCH]["loss"]:
        scratch_loss = float(moving_average([v for _, v in runs[SCRATCH]["loss"]], window)[-1])
        summary["scratch_final_loss"] = scratch_loss
    per_arm = {}
    for name, run in runs.items():
        total = run["loss"][-1][0] if run["loss"] else 0
        entry = {
            "final_loss": float(moving_average([v for _, v in run["loss"]], window)[-1]) if run["loss"] else None,
            "geneval": run["geneval"][-1][1],
            "geneval_gain_over_source": run["geneval"][-1][1] - source["geneval"],
        }
        if "final_geneval" in run and "final_geneval" in source:
            entry["final_geneval_gain_over_source"] = (
                run["final_geneval"]["overall"] - source["final_geneval"]["overall"]
            )
        ratio = added_to_kept_importance(run)
        if ratio is not None:
            entry["added_to_kept_importance"] = ratio
            entry["added_importance_target_met"] = ratio >= ADDED_IMPORTANCE_TARGET
        if "added_span_importance" in run and source.get("dropped_span_importance"):
            entry["added_span_to_dropped_span"] = run["added_span_importance"] / source["dropped_span_importance"]
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
    src_score, big_score = (
        r["overall"] if r["images_per_prompt"] == n else overall_of_first_images(r, n) for r in (src, big)
    )
    gain = big_score - src_score
    return {
        "source": src_score,
        "grown": big_score,
        "gain": gain,
        "target_met": gain >= GENEVAL_GAIN_TARGET,
        "images_per_prompt": n,
    }


def curves(metrics: dict, arms, key: str) -> dict[str, list]:
    """{arm: metrics["runs"][arm][key]} for the arms of `arms` that ran (key: "loss" or "geneval")."""
    return {a: metrics["runs"][a][key] for a in arms if a in metrics["runs"]}


def summary_table(metrics: dict) -> str:
    """A markdown table of `metrics["summary"]`: one row per arm (the importance column only when
    the run measured it)."""
    summary, runs = metrics["summary"], metrics["runs"]
    measured = any("added_to_kept_importance" in e for e in summary["arms"].values())
    head = "| arm | blocks (kept) | final loss | steps to scratch's final loss | GenEval-mini | vs source |"
    rule = "|---|---|---:|---:|---:|---:|"
    if measured:
        head += " added / kept importance, per block | added blocks together / the source's dropped ones |"
        rule += "---:|---:|"
    rows = []
    for name, e in summary["arms"].items():
        run = runs[name]
        kept = f"{run['num_layers']} ({run['keep']})" if run["keep"] is not None else f"{run['num_layers']} (-)"
        reached = e.get("steps_to_scratch_final_loss")
        frac = e.get("fraction_of_steps")
        reach = "-" if name == SCRATCH else ("never" if reached is None else f"{reached} ({frac:.0%})")
        loss = "-" if e["final_loss"] is None else f"{e['final_loss']:.4f}"
        row = f"| {run['label']} | {kept} | {loss} | {reach} | {e['geneval']:.3f} | {e['geneval_gain_over_source']:+.3f} |"
        if measured:
            ratio, span = e.get("added_to_kept_importance"), e.get("added_span_to_dropped_span")
            row += f" {'-' if ratio is None else f'{ratio:.1%}'} | {'-' if span is None else f'{span:.0%}'} |"
        rows.append(row)
    return "\n".join([head, rule, *rows]) + "\n"


def figures(metrics: dict, stamp: dict | None = None) -> dict:
    """The experiment's figures by name (lab.plots draws them): "growth_vs_scratch" (part (a)) and
    "growth_strategies" (part (b)), each training loss and GenEval-mini against steps; an arm keeps
    its colour in all. When an arm of part (c) beyond "grown" ran, "growth_added_blocks" (the same
    panels); when importance was measured, "added_block_importance": each grown arm's trained block
    importance with the blocks growth added marked."""
    from lab import plots

    cfg, source = metrics["config"], metrics["source"]
    n = source["num_layers"]
    if stamp is None:
        stamp = {
            "mode": metrics.get("mode", "?"),
            "source": source.get("label", source["path"]),
            "blocks": f"{n}->{cfg['growth_factor'] * n}",
            "steps": cfg["train"]["steps"],
            "batch": cfg["train"]["batch_size"],
            "lr": cfg["train"]["lr"],
            "seed": cfg["train"]["seed"],
        }
    labels = {name: run["label"] for name, run in metrics["runs"].items()}
    reference = {f"S ({n} blocks)": source["geneval"]}
    colors = plots.run_colors(ARMS)
    parts = {
        "growth_vs_scratch": (COMPARISON_ARMS, "Grown L vs L from scratch"),
        "growth_strategies": (STRATEGY_ARMS, "Growth initialisations"),
    }
    if any(a in metrics["runs"] for a in ADDED_BLOCK_ARMS[1:]):
        parts["growth_added_blocks"] = (ADDED_BLOCK_ARMS, "Do the added blocks learn? Their lr and init scale")
    figs = {
        name: plots.training_curves(
            curves(metrics, arms, "loss"),
            curves(metrics, arms, "geneval"),
            reference=reference,
            labels=labels,
            colors=colors,
            title=title,
            stamp=stamp,
        )
        for name, (arms, title) in parts.items()
    }
    measured = {n: r for n, r in metrics["runs"].items() if "importance" in r and r.get("added_blocks")}
    if measured:
        from lab.pruning import ImportanceTable

        figs["added_block_importance"] = plots.block_importance_panels(
            {r["label"]: ImportanceTable.from_json(r["importance"]) for r in measured.values()},
            {r["label"]: r["added_blocks"] for r in measured.values()},
            highlight_label="added by growth",
            log_scale=True,  # added blocks sit orders of magnitude below the kept ones
            stamp=stamp,
        )
    return figs
