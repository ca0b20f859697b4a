"""The pruning experiment (SANA 1.5 Fig. 7 and its pruning table), run by notebooks/pruning.ipynb.

    cfg = preset(PruningExperimentConfig, "pruning", "full")
    metrics = run(cfg, "reports/pruning")      # resumable: its models and scores stay in cfg.work_dir
    figs = figures(metrics)

From a trained deep model (L) it measures block importance on calibration prompts, prunes to
several depths (fractions of its blocks) by importance and by three naive rules (drop the last
blocks, keep evenly spaced ones, keep random ones), scores GenEval-mini before and after a short
recovery fine-tune (`configs/prune_finetune.yaml`, 100 steps), and compares the smallest depth
with a model of that depth trained from scratch: an existing one (`scratch_model`, e.g. S for L
pruned to a third) or one trained here (the source's frozen text encoder and VAE, a fresh
transformer) for the same total compute. Compute is counted in block-images along each model's
lineage (`lab.zoo.training_cost`). The paper's claims, checked by `summarize`:

1. importance pruning beats naive pruning at every depth;
2. pruned + fine-tuned comes within 0.03 of the unpruned model at a moderate depth (3/4);
3. a pruned + fine-tuned model beats a same-size model trained from scratch.

Variants that keep the same blocks (e.g. "last" and "uniform" at depth 1) are the same model,
so they are pruned, fine-tuned and scored once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from lab.config import config_dict, load_config
from lab.evaluation import evenly_spaced_prompts
from lab.model import load_pipeline, quiet_hub_logging
from lab.provenance import repo_path
from lab.pruning import METHODS, ImportanceTable, block_importance, num_blocks, prune_pipeline_dir, select_blocks
from lab.sampling import SamplerConfig
from lab.train import TrainConfig

METRICS_FILE = "metrics.json"
TABLE_FILE = "importance.json"  # the importance table measured (or given), written beside the metrics
NAIVE_METHODS = tuple(m for m in METHODS if m != "importance")
WITHIN_TARGET = 0.03  # claim 2: pruned + fine-tune within this of the unpruned model's GenEval-mini
MODERATE_FRACTION = 3 / 4  # claim 2 is checked at the depth closest to this fraction of the blocks
FINETUNE_CONFIG = "configs/prune_finetune.yaml"  # the recovery fine-tune, shared with `lab prune`
SCRATCH_CONFIG = "configs/S.yaml"  # how a model is trained from scratch
HOW_TO_MAKE_L = "grow and train L as the README says (lab grow, lab train --config configs/L.yaml)"


def _recovery_finetune() -> TrainConfig:
    return load_config(TrainConfig, repo_path(FINETUNE_CONFIG))


def _from_scratch() -> TrainConfig:
    return load_config(TrainConfig, repo_path(SCRATCH_CONFIG))


@dataclass(frozen=True)
class PruningExperimentConfig:
    """One run. Presets: configs/experiments/pruning.yaml (quick, full)."""

    source: str = "checkpoints/L"  # the deep model pruned
    stand_in: bool = False  # prune an untrained tiny stand-in when `source` does not exist (quick runs)
    work_dir: str = "runs/pruning"  # pruned and fine-tuned models and their scores ("" = a temporary directory)
    importance_table: str = ""  # a stored importance table (JSON) to prune by; "" = measure one here
    fractions: tuple[float, ...] = (3 / 4, 1 / 2, 1 / 3)  # pruned depths, as fractions of the source's blocks
    methods: tuple[str, ...] = METHODS  # lab.pruning.METHODS
    calibration_prompts: str = "quick"  # prompt set for block importance
    calibration_limit: int = 0  # 0 = the whole set; else this many evenly spaced prompts
    calibration: SamplerConfig = field(default_factory=SamplerConfig)  # the sampling runs the importance is
    # measured in: steps = timesteps, guidance_scale, batch_size = prompts per forward pass
    branches: str = "both"  # CFG rows averaged (lab.pruning.BRANCHES)
    eval_prompts: str = "full"  # GenEval-mini prompt set
    eval_prompt_limit: int = 0
    images_per_prompt: int = 1  # 553 images per score on the full set; 4 (GenEval's) quadruples the run
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # GenEval-mini's generation
    finetune: TrainConfig = field(default_factory=_recovery_finetune)  # the recovery fine-tune (init_from set here)
    finetune_methods: tuple[str, ...] = METHODS  # variants fine-tuned and scored again (the rest: before only)
    finetune_source: bool = False  # the control: the same fine-tune on the unpruned source, scored too (does
    # the fine-tune itself help or hurt, pruning aside?)
    scratch_model: str = (
        ""  # an existing from-scratch model of the smallest pruned depth to compare with ("" = train one)
    )
    scratch: TrainConfig = field(default_factory=_from_scratch)  # training of that model when none is given
    # (init_from and steps are set here)
    scratch_steps: int = 0  # 0 = compute-matched (see compute_matched_steps); < 0 = no from-scratch model
    source_block_images: int = 0  # the source's training compute in block-images (0 = lab.zoo.training_cost)
    seed: int = 0  # calibration noise, the random method's draw, GenEval-mini's seeds

    def __post_init__(self):
        bad = [m for m in (*self.methods, *self.finetune_methods) if m not in METHODS]
        if bad:
            raise ValueError(f"unknown pruning methods {bad}; expected some of {list(METHODS)}")
        if not self.fractions or any(not 0 < f < 1 for f in self.fractions):
            raise ValueError(f"fractions {self.fractions} must lie strictly between 0 and 1")


Config = PruningExperimentConfig


def target_depths(num: int, fractions) -> list[int]:
    """Pruned depths (descending, distinct, each in 1..num-1) for `fractions` of `num` blocks."""
    if num < 2:
        raise ValueError(f"a model of {num} block(s) cannot be pruned; expected at least 2")
    return sorted({min(num - 1, max(1, round(num * f))) for f in fractions}, reverse=True)


# ----------------------------------------------------------------------------------------------
# Stages


def measure_importance(source: str | Path, cfg: PruningExperimentConfig, progress: bool = True) -> ImportanceTable:
    """Block importance of the source on the calibration prompts."""
    prompts = evenly_spaced_prompts(cfg.calibration_prompts, cfg.calibration_limit)
    c = cfg.calibration
    return block_importance(
        load_pipeline(source),
        prompts,
        c.steps,
        c.guidance_scale,
        cfg.branches,
        cfg.seed,
        c.batch_size,
        source=str(source),
        progress=progress,
    )


def geneval_score(pipe_dir: str | Path, cfg: PruningExperimentConfig, cache_dir: str | Path | None = None) -> dict:
    """{"overall", "task_accuracy"} of GenEval-mini on the configured prompt set.

    With `cache_dir`, a score is stored there under a digest of the pipeline's weights and the
    scoring settings and reused when asked again, so a rerun of an interrupted experiment only
    scores what it had not."""
    import hashlib
    import json

    from lab.evaluation import evaluate_pipeline
    from lab.provenance import write_json

    # the score's settings, keyed as before the sampler was nested, so caches of earlier runs stay valid
    settings = {
        "eval_prompts": cfg.eval_prompts,
        "eval_prompt_limit": cfg.eval_prompt_limit,
        "images_per_prompt": cfg.images_per_prompt,
        "sample_steps": cfg.sampler.steps,
        "guidance_scale": cfg.sampler.guidance_scale,
        "seed": cfg.seed,
    }
    cached = None
    if cache_dir is not None:
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
        for f in sorted(Path(pipe_dir).glob("*/*.safetensors")):
            digest.update(f.read_bytes())
        cached = Path(cache_dir) / f"{digest.hexdigest()[:20]}.json"
        if cached.is_file():
            stored = json.loads(cached.read_text())
            return {"overall": stored["overall"], "task_accuracy": stored["task_accuracy"]}
    prompts = evenly_spaced_prompts(cfg.eval_prompts, cfg.eval_prompt_limit)
    report, _ = evaluate_pipeline(
        load_pipeline(pipe_dir), prompts, cfg.images_per_prompt, cfg.sampler, cfg.seed, progress=False
    )
    score = {"overall": report.overall, "task_accuracy": report.task_accuracy}
    if cached is not None:
        write_json({**score, "pipeline": str(pipe_dir), "settings": settings}, cached)
    return score


def score_cache(work_dir: str | Path) -> Path:
    """Where `geneval_score` keeps the experiment's scores: `work_dir/scores`."""
    return Path(work_dir) / "scores"


def finetune(cfg: PruningExperimentConfig, pruned: str | Path, run_dir: str | Path, progress: bool = False) -> Path:
    """The recovery fine-tune of the pipeline in `pruned`, trained in `run_dir`. A run left there
    with the same config is resumed (exactly, or just reused when finished); any other starts over.
    Returns the fine-tuned pipeline directory."""
    from lab.provenance import portable
    from lab.train import train

    ft = finetune_config(cfg, pruned)
    saved = Path(run_dir) / "train_config.yaml"
    same = saved.is_file() and portable(config_dict(load_config(TrainConfig, saved))) == portable(config_dict(ft))
    return train(ft, run_dir, resume=same, progress=progress)


def finetune_config(cfg: PruningExperimentConfig, init_from: str | Path) -> TrainConfig:
    """The recovery fine-tune's TrainConfig (`cfg.finetune`), starting from `init_from`."""
    return replace(cfg.finetune, init_from=str(init_from))


def plan_variants(num: int, table: ImportanceTable, cfg: PruningExperimentConfig) -> list[dict]:
    """One dict per (depth, method): {"method", "depth", "kept"}, deepest first."""
    return [
        {"method": m, "depth": d, "kept": select_blocks(num, d, m, table, cfg.seed)}
        for d in target_depths(num, cfg.fractions)
        for m in cfg.methods
    ]


def run_variants(
    source: str | Path,
    table: ImportanceTable,
    work_dir: str | Path,
    cfg: PruningExperimentConfig,
    progress: bool = False,
) -> list[dict]:
    """Prunes and scores every variant of `plan_variants`; fine-tunes and scores again those whose
    method is in `cfg.finetune_methods`.

    Writes `work_dir/keep-<blocks>/pruned` (the pruned pipeline) and `.../finetune` (the trainer's
    run) once per distinct set of kept blocks; scores go to `score_cache(work_dir)`, so rerunning an
    interrupted experiment in the same `work_dir` redoes only what is missing. Returns the plan's
    dicts with "before", "after"
    (overall scores; "after" None when not fine-tuned), "task_accuracy_before", "task_accuracy_after",
    "finetune_seconds", "pipeline", and "compute" (the model's lineage in block-images,
    `lab.zoo.training_cost`; None if unknown).
    """
    from lab.runlog import training_seconds
    from lab.zoo import training_cost

    pipe = load_pipeline(source)
    plan = plan_variants(num_blocks(pipe.transformer), table, cfg)
    scores = score_cache(work_dir)
    finetune_batch = cfg.finetune.batch_size
    done: dict[tuple[int, ...], dict] = {}
    for v in plan:
        key = tuple(v["kept"])
        run = Path(work_dir) / ("keep-" + "-".join(map(str, key)))
        if key not in done:
            pruned = prune_pipeline_dir(
                pipe, run / "pruned", v["depth"], v["method"], table, cfg.seed, {"source": str(source)}
            )
            before = geneval_score(pruned, cfg, scores)
            done[key] = {
                "before": before["overall"],
                "after": None,
                "task_accuracy_before": before["task_accuracy"],
                "task_accuracy_after": None,
                "finetune_seconds": None,
                "pipeline": str(pruned),
                "compute": training_cost(pruned),
            }
        if v["method"] in cfg.finetune_methods and done[key]["after"] is None:
            tuned = finetune(cfg, run / "pruned", run / "finetune", progress)
            seconds = training_seconds(run / "finetune" / "train_log.jsonl", finetune_batch)
            after = geneval_score(tuned, cfg, scores)
            done[key].update(
                after=after["overall"],
                task_accuracy_after=after["task_accuracy"],
                finetune_seconds=seconds,
                pipeline=str(tuned),
                compute=training_cost(tuned),
            )
    return [{**v, **done[tuple(v["kept"])]} for v in plan]


def source_compute(source: str | Path, cfg: PruningExperimentConfig) -> int | None:
    """The source's training compute in block-images: `cfg.source_block_images`, else its lineage's
    (`lab.zoo.training_cost`); None when unknown."""
    from lab.zoo import training_cost

    return cfg.source_block_images or training_cost(source)


def compute_matched_steps(source_block_images: int, depth: int, finetune_images: int, batch_size: int) -> int:
    """Training steps at `batch_size` for a from-scratch model of `depth` blocks that cost as much
    as training the source plus the fine-tune, in block-images (blocks x images: the blocks
    dominate the FLOPs, and a block costs the same in every model of one width)."""
    if min(depth, batch_size) < 1 or min(source_block_images, finetune_images) < 0:
        raise ValueError(f"depth {depth} and batch {batch_size} must be >= 1, block-images and images >= 0")
    return math.ceil((source_block_images + depth * finetune_images) / (depth * batch_size))


def run_scratch(
    source: str | Path, depth: int, work_dir: str | Path, cfg: PruningExperimentConfig, progress: bool = False
) -> dict | None:
    """The from-scratch comparison at `depth` blocks, scored like the pruned models: `cfg.scratch_model`
    when set (it must have `depth` blocks), else a fresh transformer (the source's frozen text encoder
    and VAE) trained for `cfg.scratch_steps` steps, or the compute-matched number when that is 0.
    Returns {"label", "depth", "steps", "compute" (block-images or None), "score", "task_accuracy",
    "pipeline"}, or None when skipped (scratch_steps < 0, or compute-matching an unknown budget)."""
    from lab.train import train
    from lab.zoo import fresh_pipeline_dir, training_cost

    if cfg.scratch_model:
        model = repo_path(cfg.scratch_model)
        found = num_blocks(load_pipeline(model).transformer)
        if found != depth:
            raise ValueError(
                f"scratch_model {cfg.scratch_model} has {found} blocks; the comparison needs {depth} "
                f"(the smallest pruned depth)"
            )
        score, compute = geneval_score(model, cfg, score_cache(work_dir)), training_cost(model)
        steps = None
        label = f"{cfg.scratch_model} from scratch"
    else:
        if cfg.scratch_steps < 0:
            return None
        base = cfg.scratch
        steps = cfg.scratch_steps
        if steps == 0:
            budget = source_compute(source, cfg)
            if budget is None:
                return None
            steps = compute_matched_steps(budget, depth, cfg.finetune.steps * cfg.finetune.batch_size, base.batch_size)
        run = Path(work_dir) / f"scratch-{depth}"
        init = fresh_pipeline_dir(source, run / "init", depth, cfg.seed)
        model = train(replace(base, init_from=str(init), steps=steps), run / "train", resume=False, progress=progress)
        score, compute = geneval_score(model, cfg, score_cache(work_dir)), depth * steps * base.batch_size
        label = f"{depth} blocks from scratch ({steps} steps)"
    return {
        "label": label,
        "depth": depth,
        "steps": steps,
        "compute": compute,
        "score": score["overall"],
        "task_accuracy": score["task_accuracy"],
        "pipeline": str(model),
    }


def run(
    cfg: PruningExperimentConfig, out: str | Path | None = None, mode: str | None = None, progress: bool = False
) -> dict:
    """All stages: importance (`cfg.importance_table`, else measured), the unpruned score, the
    variants, the from-scratch comparison. Rerun with the same `cfg.work_dir`, it redoes only what
    is missing. Writes `out/importance.json` and `out/metrics.json` when `out` is given (with
    `mode`, the preset's name, when given).

    Returns {"config", "source": {"path", "label", "num_layers", "geneval", "task_accuracy"
    (+ "finetuned": {"overall", "task_accuracy"} with `cfg.finetune_source`)}, "importance",
    "variants": [...], "scratch": [...], "summary"} (+ "mode").
    """
    from lab.experiments import source_label, source_pipeline, work_directory
    from lab.provenance import write_json

    quiet_hub_logging()
    work = work_directory(cfg.work_dir, "pruning-runs-")
    source = source_pipeline(cfg.source, cfg.stand_in, work, HOW_TO_MAKE_L)
    if cfg.importance_table:
        table = ImportanceTable.load(repo_path(cfg.importance_table))
    else:
        table = measure_importance(source, cfg, progress)
    base = geneval_score(source, cfg, score_cache(work))
    if cfg.finetune_source:
        base["finetuned"] = geneval_score(
            finetune(cfg, source, work / "source-finetune", progress), cfg, score_cache(work)
        )
    variants = run_variants(source, table, work, cfg, progress)
    scratch = run_scratch(source, scratch_depth(source, cfg), work, cfg, progress)
    metrics = assemble_metrics(cfg, source, base, table, variants, scratch)
    metrics["source"]["label"] = source_label(cfg.source, source)
    if mode:
        metrics["mode"] = mode
    if out is not None:
        table.save(Path(out) / TABLE_FILE)
        write_json(metrics, Path(out) / METRICS_FILE)
    return metrics


def scratch_depth(source: str | Path, cfg: PruningExperimentConfig) -> int:
    """The depth of the from-scratch comparison: the smallest pruned depth (S's, for L at 1/3)."""
    return min(target_depths(num_blocks(load_pipeline(source).transformer), cfg.fractions))


def assemble_metrics(
    cfg: PruningExperimentConfig,
    source: str | Path,
    base: dict,
    table: ImportanceTable,
    variants: list[dict],
    scratch: dict | None,
) -> dict:
    """The experiment's metrics dict (see `run`), with its summary."""
    metrics = {
        "config": config_dict(cfg),
        "source": {
            "path": str(source),
            "num_layers": table.num_blocks,
            "geneval": base["overall"],
            "task_accuracy": base["task_accuracy"],
            **({"finetuned": base["finetuned"]} if "finetuned" in base else {}),
        },
        "importance": table.to_json(),
        "variants": variants,
        "scratch": [scratch] if scratch else [],
    }
    metrics["summary"] = summarize(metrics)
    return metrics


# ----------------------------------------------------------------------------------------------
# Analysis (no side effects)


def summarize(metrics: dict) -> dict:
    """The paper's three claims against the measured scores.

    Returns {"importance_vs_naive": {stage: {depth: {"importance", "best_naive", "margin"}}},
    "importance_beats_naive": {stage: bool | None}} for stage "before" and "after" the fine-tune
    (compared only where importance and a naive method were both scored at that stage), and
    "moderate_depth", "gap_to_unpruned", "gap_target", "within_target", "scratch": {depth:
    {"pruned", "scratch", "margin", "pruned_compute", "scratch_compute"}}, "beats_scratch". A claim
    whose numbers are missing is None. Claims 2 and 3 use the importance-pruned score after the
    fine-tune (before it when it was not fine-tuned). With the control run (`finetune_source`),
    "finetune_effect_on_unpruned": the unpruned model's score after the fine-tune minus before.
    """
    rows, unpruned = metrics["variants"], metrics["source"]["geneval"]

    def score(r):
        return r["after"] if r.get("after") is not None else r["before"]

    depths = sorted({r["depth"] for r in rows}, reverse=True)
    out: dict = {"gap_target": WITHIN_TARGET, "importance_vs_naive": {}, "importance_beats_naive": {}}
    for stage in ("before", "after"):
        vs = {}
        for d in depths:
            imp = [
                r[stage] for r in rows if r["depth"] == d and r["method"] == "importance" and r.get(stage) is not None
            ]
            naive = [
                r[stage] for r in rows if r["depth"] == d and r["method"] in NAIVE_METHODS and r.get(stage) is not None
            ]
            if imp and naive:
                vs[d] = {"importance": imp[0], "best_naive": max(naive), "margin": imp[0] - max(naive)}
        out["importance_vs_naive"][stage] = vs
        # at least as good everywhere, better somewhere (where it keeps a naive rule's blocks, it ties)
        margins = [v["margin"] for v in vs.values()]
        out["importance_beats_naive"][stage] = (min(margins) >= 0 and max(margins) > 0) if margins else None
    n = metrics["source"]["num_layers"]
    imp_rows = {r["depth"]: r for r in rows if r["method"] == "importance"}
    if imp_rows:
        moderate = min(imp_rows, key=lambda d: (abs(d / n - MODERATE_FRACTION), -d))
        gap = unpruned - score(imp_rows[moderate])
        out.update(moderate_depth=moderate, gap_to_unpruned=gap, within_target=gap <= WITHIN_TARGET)
    else:
        out.update(moderate_depth=None, gap_to_unpruned=None, within_target=None)
    tuned = metrics["source"].get("finetuned")
    out["finetune_effect_on_unpruned"] = None if tuned is None else tuned["overall"] - unpruned
    out["scratch"], out["beats_scratch"] = {}, None
    for s in metrics.get("scratch", []):
        if s["depth"] in imp_rows:
            pruned = score(imp_rows[s["depth"]])
            out["scratch"][s["depth"]] = {
                "pruned": pruned,
                "scratch": s["score"],
                "margin": pruned - s["score"],
                "pruned_compute": imp_rows[s["depth"]].get("compute"),
                "scratch_compute": s.get("compute"),
            }
    if out["scratch"]:
        out["beats_scratch"] = all(v["margin"] > 0 for v in out["scratch"].values())
    return out


def summary_table(metrics: dict) -> str:
    """Markdown: one row per (depth, method) with GenEval-mini before and after the fine-tune, each
    against the unpruned model."""
    unpruned = metrics["source"]["geneval"]
    tuned = metrics["source"].get("finetuned")
    control = "– | –" if tuned is None else f"{tuned['overall']:.3f} | {tuned['overall'] - unpruned:+.3f}"
    lines = [
        "| depth | method | kept blocks | pruned | vs unpruned | + fine-tune | vs unpruned |",
        "|---:|---|---|---:|---:|---:|---:|",
        f"| {metrics['source']['num_layers']} | unpruned | all | {unpruned:.3f} | – | {control} |",
    ]
    for r in metrics["variants"]:
        after = "–" if r.get("after") is None else f"{r['after']:.3f}"
        gap = "–" if r.get("after") is None else f"{r['after'] - unpruned:+.3f}"
        kept = ",".join(map(str, r["kept"]))
        lines.append(
            f"| {r['depth']} | {r['method']} | {kept} | {r['before']:.3f} | {r['before'] - unpruned:+.3f} "
            f"| {after} | {gap} |"
        )
    for s in metrics.get("scratch", []):
        lines.append(f"| {s['depth']} | {s['label']} | – | – | – | {s['score']:.3f} | {s['score'] - unpruned:+.3f} |")
    return "\n".join(lines) + "\n"


def figures(metrics: dict, stamp: dict | None = None) -> dict:
    """The experiment's figures by name (lab.plots draws them): "importance_lines" (the ranking
    pruned by) and "pruning_curves" (GenEval-mini vs depth per method, before and after the
    fine-tune, with the unpruned and from-scratch models)."""
    from lab import plots

    cfg, source = metrics["config"], metrics["source"]
    if stamp is None:
        stamp = {
            "experiment": "pruning",
            "mode": metrics.get("mode", "?"),
            "model": source.get("label", source["path"]),
            "eval": f"{cfg['eval_prompts']} x{cfg['images_per_prompt']}",
            "finetune_steps": cfg["finetune"]["steps"],
        }
    return {
        "importance_lines": plots.block_importance_lines(ImportanceTable.from_json(metrics["importance"]), stamp=stamp),
        "pruning_curves": plots.pruning_curves(
            metrics["variants"], unpruned=source["geneval"], scratch=metrics["scratch"], stamp=stamp
        ),
    }
