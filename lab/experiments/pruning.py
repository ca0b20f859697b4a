"""The pruning experiment (SANA 1.5 Fig. 7 and its pruning table), run by notebooks/pruning.ipynb.

    cfg = PruningExperimentConfig()                       # or QUICK
    metrics = run_pruning_experiment("checkpoints/L", "runs/pruning", cfg)

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
import time
from dataclasses import dataclass, replace
from pathlib import Path

from lab.config import config_dict, load_config
from lab.experiments.growth import eval_prompt_set, fresh_pipeline_dir, quick_source
from lab.model import load_pipeline, quiet_hub_logging
from lab.provenance import repo_path
from lab.pruning import METHODS, ImportanceTable, block_importance, num_blocks, save_pruned, select_blocks
from lab.sampling import SamplerConfig

NAIVE_METHODS = tuple(m for m in METHODS if m != "importance")
WITHIN_TARGET = 0.03  # claim 2: pruned + fine-tune within this of the unpruned model's GenEval-mini
MODERATE_FRACTION = 3 / 4  # claim 2 is checked at the depth closest to this fraction of the blocks


@dataclass(frozen=True)
class PruningExperimentConfig:
    """One run of the experiment. The defaults are the full run; `QUICK` is the smoke test."""

    fractions: tuple[float, ...] = (3 / 4, 1 / 2, 1 / 3)  # pruned depths, as fractions of the source's blocks
    methods: tuple[str, ...] = METHODS  # lab.pruning.METHODS
    calibration_prompts: str = "quick"  # prompt set for block importance
    calibration_limit: int = 0  # 0 = the whole set; else this many evenly spaced prompts
    timesteps: int = 20  # sampling steps the importance is measured at
    branches: str = "both"  # CFG rows averaged (lab.pruning.BRANCHES)
    eval_prompts: str = "full"  # GenEval-mini prompt set
    eval_prompt_limit: int = 0
    images_per_prompt: int = 1  # 553 images per score on the full set; 4 (GenEval's) quadruples the run
    sample_steps: int = 20
    guidance_scale: float = 4.5
    sample_batch_size: int = 64
    finetune_config: str = "configs/prune_finetune.yaml"  # lab.train.TrainConfig fields of the recovery
    finetune_steps: int = 100
    finetune_methods: tuple[str, ...] = METHODS  # variants fine-tuned and scored again (the rest: before only)
    finetune_batch_size: int = 0  # 0 = the fine-tune config's
    scratch_model: str = ""  # an existing from-scratch model of the smallest pruned depth to compare with ("" = train one)
    scratch_config: str = "configs/S.yaml"  # TrainConfig of the from-scratch model (init_from is set here)
    scratch_steps: int = 0  # 0 = compute-matched (see compute_matched_steps); < 0 = no from-scratch model
    scratch_batch_size: int = 0  # 0 = the scratch config's
    source_block_images: int = 0  # the source's training compute in block-images (0 = lab.zoo.training_cost)
    seed: int = 0

    def __post_init__(self):
        bad = [m for m in (*self.methods, *self.finetune_methods) if m not in METHODS]
        if bad:
            raise ValueError(f"unknown pruning methods {bad}; expected some of {list(METHODS)}")
        if not self.fractions or any(not 0 < f < 1 for f in self.fractions):
            raise ValueError(f"fractions {self.fractions} must lie strictly between 0 and 1")

    @property
    def sampler(self) -> SamplerConfig:
        return SamplerConfig(self.sample_steps, self.guidance_scale, self.sample_batch_size)


# The committed run on 2 CPU cores: L's 24 blocks pruned to 18/12/8 by all four methods and scored; the
# importance-pruned ones fine-tuned (each fine-tune + score costs about as much as two scores) and compared
# with S, 8 blocks trained from scratch. Claim 1 is then checked before the fine-tune, where all methods meet.
FULL = PruningExperimentConfig(scratch_model="checkpoints/S", finetune_methods=("importance",))
QUICK = PruningExperimentConfig(calibration_limit=4, timesteps=4, eval_prompts="quick", eval_prompt_limit=12,
                                images_per_prompt=1, sample_steps=4, finetune_steps=2, finetune_batch_size=4,
                                scratch_steps=2, scratch_batch_size=4)


def mode_config(mode: str, **overrides) -> PruningExperimentConfig:
    """QUICK or FULL, with `overrides` (None values ignored)."""
    if mode not in ("quick", "full"):
        raise ValueError(f"unknown mode {mode!r}; expected 'quick' or 'full'")
    base = QUICK if mode == "quick" else FULL
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def source_model(model: str | Path, mode: str, work_dir: str | Path) -> Path:
    """The pipeline directory to prune (`model`, relative to the repository unless found from here);
    in quick mode, when it does not exist, an untrained tiny stand-in
    (`lab.experiments.growth.quick_source`) written under `work_dir`."""
    model = repo_path(model)
    if (model / "model_index.json").is_file():
        return model
    if mode != "quick":
        raise ValueError(f"{model} is not a pipeline directory; the full run needs a trained model (e.g. checkpoints/L)")
    return quick_source(Path(work_dir))


def source_label(model: str | Path, source: str | Path) -> str:
    """How figures name the model: `model` itself, or the quick stand-in used in its place."""
    return str(model) if repo_path(model) == Path(source) else f"untrained tiny stand-in (no {model})"


def target_depths(num: int, fractions) -> list[int]:
    """Pruned depths (descending, distinct, each in 1..num-1) for `fractions` of `num` blocks."""
    if num < 2:
        raise ValueError(f"a model of {num} block(s) cannot be pruned; expected at least 2")
    return sorted({min(num - 1, max(1, round(num * f))) for f in fractions}, reverse=True)


@dataclass(frozen=True)
class ImportanceStudyConfig:
    """The block-importance notebook's analysis (Fig. 6). The defaults are the full run."""

    prompts: str = "quick"  # calibration prompt set
    prompt_limit: int = 0  # 0 = the whole set; else this many evenly spaced prompts
    timesteps: int = 20  # sampling steps measured
    branches: str = "both"  # CFG rows averaged (lab.pruning.BRANCHES)
    guidance_scale: float = 4.5
    batch_size: int = 64  # prompts per forward pass
    seed: int = 0
    explorer_prompts: int = 12  # prompts offered in the explorer's menu
    edge_fraction: float = 0.15  # head and tail = this fraction of the blocks each


QUICK_STUDY = ImportanceStudyConfig(prompt_limit=4, timesteps=4, explorer_prompts=3)


def study_config(mode: str, **overrides) -> ImportanceStudyConfig:
    """QUICK_STUDY or the full defaults, with `overrides` (None values ignored)."""
    if mode not in ("quick", "full"):
        raise ValueError(f"unknown mode {mode!r}; expected 'quick' or 'full'")
    base = QUICK_STUDY if mode == "quick" else ImportanceStudyConfig()
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def run_importance_study(pipe, cfg: ImportanceStudyConfig, source: str = "") -> tuple[ImportanceTable, dict]:
    """Block importance of `pipe` on the calibration prompts. Returns (table, metrics) with metrics
    {"config", "importance", "edge_vs_middle", "seconds"}."""
    from lab.pruning import edge_vs_middle

    prompts = eval_prompt_set(cfg.prompts, cfg.prompt_limit)
    start = time.perf_counter()
    table = block_importance(pipe, prompts, cfg.timesteps, cfg.guidance_scale, cfg.branches, cfg.seed,
                             cfg.batch_size, source=source)
    seconds = time.perf_counter() - start
    return table, {"config": config_dict(cfg), "importance": table.to_json(),
                   "edge_vs_middle": edge_vs_middle(table, cfg.edge_fraction), "seconds": seconds}


def explorer_prompts(cfg: ImportanceStudyConfig) -> list[str]:
    """Prompts for the explorer's menu: evenly spaced over the calibration set (every task)."""
    return [p.text for p in eval_prompt_set(cfg.prompts, cfg.explorer_prompts)]


# ----------------------------------------------------------------------------------------------
# Stages


def measure_importance(source: str | Path, cfg: PruningExperimentConfig) -> ImportanceTable:
    """Block importance of the source on the calibration prompts."""
    prompts = eval_prompt_set(cfg.calibration_prompts, cfg.calibration_limit)
    return block_importance(load_pipeline(source), prompts, cfg.timesteps, cfg.guidance_scale, cfg.branches,
                            cfg.seed, cfg.sample_batch_size, source=str(source))


def geneval_score(pipe_dir: str | Path, cfg: PruningExperimentConfig, cache_dir: str | Path | None = None) -> dict:
    """{"overall", "task_accuracy"} of GenEval-mini on the configured prompt set.

    With `cache_dir`, a score is stored there under a digest of the pipeline's weights and the
    scoring settings and reused when asked again, so a rerun of an interrupted experiment only
    scores what it had not."""
    import hashlib
    import json

    from lab.evaluation import evaluate_pipeline
    from lab.provenance import write_json

    settings = {k: getattr(cfg, k) for k in ("eval_prompts", "eval_prompt_limit", "images_per_prompt", "sample_steps",
                                             "guidance_scale", "seed")}
    cached = None
    if cache_dir is not None:
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
        for f in sorted(Path(pipe_dir).glob("*/*.safetensors")):
            digest.update(f.read_bytes())
        cached = Path(cache_dir) / f"{digest.hexdigest()[:20]}.json"
        if cached.is_file():
            stored = json.loads(cached.read_text())
            return {"overall": stored["overall"], "task_accuracy": stored["task_accuracy"]}
    prompts = eval_prompt_set(cfg.eval_prompts, cfg.eval_prompt_limit)
    report, _ = evaluate_pipeline(load_pipeline(pipe_dir), prompts, cfg.images_per_prompt, cfg.sampler, cfg.seed,
                                  progress=False)
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
    from lab.train import TrainConfig, train

    ft = finetune_config(cfg, pruned)
    saved = Path(run_dir) / "train_config.yaml"
    same = saved.is_file() and portable(config_dict(load_config(TrainConfig, saved))) == portable(config_dict(ft))
    return train(ft, run_dir, resume=same, progress=progress)


def finetune_config(cfg: PruningExperimentConfig, init_from: str | Path):
    """The recovery fine-tune's TrainConfig: the YAML, starting from `init_from`."""
    from lab.train import TrainConfig

    batch = cfg.finetune_batch_size or None
    return load_config(TrainConfig, repo_path(cfg.finetune_config), init_from=str(init_from), steps=cfg.finetune_steps,
                       batch_size=batch, seed=cfg.seed)


def plan_variants(num: int, table: ImportanceTable, cfg: PruningExperimentConfig) -> list[dict]:
    """One dict per (depth, method): {"method", "depth", "kept"}, deepest first."""
    return [{"method": m, "depth": d, "kept": select_blocks(num, d, m, table, cfg.seed)}
            for d in target_depths(num, cfg.fractions) for m in cfg.methods]


def run_variants(source: str | Path, table: ImportanceTable, work_dir: str | Path, cfg: PruningExperimentConfig,
                 progress: bool = False) -> list[dict]:
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
    finetune_batch = finetune_config(cfg, source).batch_size
    done: dict[tuple[int, ...], dict] = {}
    for v in plan:
        key = tuple(v["kept"])
        run = Path(work_dir) / ("keep-" + "-".join(map(str, key)))
        if key not in done:
            pruned = save_pruned(pipe, key, run / "pruned", {"source": str(source), "by": v["method"]})
            before = geneval_score(pruned, cfg, scores)
            done[key] = {"before": before["overall"], "after": None, "task_accuracy_before": before["task_accuracy"],
                         "task_accuracy_after": None, "finetune_seconds": None, "pipeline": str(pruned),
                         "compute": training_cost(pruned)}
        if v["method"] in cfg.finetune_methods and done[key]["after"] is None:
            tuned = finetune(cfg, run / "pruned", run / "finetune", progress)
            seconds = training_seconds(run / "finetune" / "train_log.jsonl", finetune_batch)
            after = geneval_score(tuned, cfg, scores)
            done[key].update(after=after["overall"], task_accuracy_after=after["task_accuracy"],
                             finetune_seconds=seconds, pipeline=str(tuned), compute=training_cost(tuned))
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


def run_scratch(source: str | Path, depth: int, work_dir: str | Path, cfg: PruningExperimentConfig,
                progress: bool = False) -> dict | None:
    """The from-scratch comparison at `depth` blocks, scored like the pruned models: `cfg.scratch_model`
    when set (it must have `depth` blocks), else a fresh transformer (the source's frozen text encoder
    and VAE) trained for `cfg.scratch_steps` steps, or the compute-matched number when that is 0.
    Returns {"label", "depth", "steps", "compute" (block-images or None), "score", "task_accuracy",
    "pipeline"}, or None when skipped (scratch_steps < 0, or compute-matching an unknown budget)."""
    from lab.train import TrainConfig, train
    from lab.zoo import training_cost

    if cfg.scratch_model:
        model = repo_path(cfg.scratch_model)
        found = num_blocks(load_pipeline(model).transformer)
        if found != depth:
            raise ValueError(f"scratch_model {cfg.scratch_model} has {found} blocks; the comparison needs {depth} "
                             f"(the smallest pruned depth)")
        score, compute = geneval_score(model, cfg, score_cache(work_dir)), training_cost(model)
        steps = None
        label = f"{cfg.scratch_model} from scratch"
    else:
        if cfg.scratch_steps < 0:
            return None
        base = load_config(TrainConfig, repo_path(cfg.scratch_config), batch_size=cfg.scratch_batch_size or None)
        steps = cfg.scratch_steps
        if steps == 0:
            budget = source_compute(source, cfg)
            if budget is None:
                return None
            ft = finetune_config(cfg, source)
            steps = compute_matched_steps(budget, depth, ft.steps * ft.batch_size, base.batch_size)
        run = Path(work_dir) / f"scratch-{depth}"
        init = fresh_pipeline_dir(source, run / "init", depth, cfg.seed)
        model = train(replace(base, init_from=str(init), steps=steps, seed=cfg.seed), run / "train", resume=False,
                      progress=progress)
        score, compute = geneval_score(model, cfg, score_cache(work_dir)), depth * steps * base.batch_size
        label = f"{depth} blocks from scratch ({steps} steps)"
    return {"label": label, "depth": depth, "steps": steps, "compute": compute, "score": score["overall"],
            "task_accuracy": score["task_accuracy"], "pipeline": str(model)}


def run_pruning_experiment(source: str | Path, work_dir: str | Path, cfg: PruningExperimentConfig = PruningExperimentConfig(),
                           table: ImportanceTable | None = None, progress: bool = False) -> dict:
    """All stages: importance (unless `table` is given), unpruned score, variants, from scratch.

    Returns {"config", "source": {"path", "num_layers", "geneval", "task_accuracy"}, "importance",
    "variants": [...], "scratch": [...], "summary"}; write it with `lab.provenance.write_json`.
    """
    quiet_hub_logging()
    table = table if table is not None else measure_importance(source, cfg)
    base = geneval_score(source, cfg, score_cache(work_dir))
    variants = run_variants(source, table, work_dir, cfg, progress)
    scratch = run_scratch(source, scratch_depth(source, cfg), work_dir, cfg, progress)
    return assemble_metrics(cfg, source, base, table, variants, scratch)


def scratch_depth(source: str | Path, cfg: PruningExperimentConfig) -> int:
    """The depth of the from-scratch comparison: the smallest pruned depth (S's, for L at 1/3)."""
    return min(target_depths(num_blocks(load_pipeline(source).transformer), cfg.fractions))


def assemble_metrics(cfg: PruningExperimentConfig, source: str | Path, base: dict, table: ImportanceTable,
                     variants: list[dict], scratch: dict | None) -> dict:
    """The experiment's metrics dict (see `run_pruning_experiment`), with its summary."""
    metrics = {"config": config_dict(cfg),
               "source": {"path": str(source), "num_layers": table.num_blocks, "geneval": base["overall"],
                          "task_accuracy": base["task_accuracy"]},
               "importance": table.to_json(), "variants": variants, "scratch": [scratch] if scratch else []}
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
    fine-tune (before it when it was not fine-tuned).
    """
    rows, unpruned = metrics["variants"], metrics["source"]["geneval"]

    def score(r):
        return r["after"] if r.get("after") is not None else r["before"]

    depths = sorted({r["depth"] for r in rows}, reverse=True)
    out: dict = {"gap_target": WITHIN_TARGET, "importance_vs_naive": {}, "importance_beats_naive": {}}
    for stage in ("before", "after"):
        vs = {}
        for d in depths:
            imp = [r[stage] for r in rows if r["depth"] == d and r["method"] == "importance" and r.get(stage) is not None]
            naive = [r[stage] for r in rows
                     if r["depth"] == d and r["method"] in NAIVE_METHODS and r.get(stage) is not None]
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
    out["scratch"], out["beats_scratch"] = {}, None
    for s in metrics.get("scratch", []):
        if s["depth"] in imp_rows:
            pruned = score(imp_rows[s["depth"]])
            out["scratch"][s["depth"]] = {"pruned": pruned, "scratch": s["score"], "margin": pruned - s["score"],
                                          "pruned_compute": imp_rows[s["depth"]].get("compute"),
                                          "scratch_compute": s.get("compute")}
    if out["scratch"]:
        out["beats_scratch"] = all(v["margin"] > 0 for v in out["scratch"].values())
    return out


def summary_table(metrics: dict) -> str:
    """Markdown: one row per (depth, method) with GenEval-mini before and after the fine-tune, each
    against the unpruned model."""
    unpruned = metrics["source"]["geneval"]
    lines = ["| depth | method | kept blocks | pruned | vs unpruned | + fine-tune | vs unpruned |",
             "|---:|---|---|---:|---:|---:|---:|",
             f"| {metrics['source']['num_layers']} | unpruned | all | {unpruned:.3f} | – | – | – |"]
    for r in metrics["variants"]:
        after = "–" if r.get("after") is None else f"{r['after']:.3f}"
        gap = "–" if r.get("after") is None else f"{r['after'] - unpruned:+.3f}"
        kept = ",".join(map(str, r["kept"]))
        lines.append(f"| {r['depth']} | {r['method']} | {kept} | {r['before']:.3f} | {r['before'] - unpruned:+.3f} "
                     f"| {after} | {gap} |")
    for s in metrics.get("scratch", []):
        lines.append(f"| {s['depth']} | {s['label']} | – | – | – | {s['score']:.3f} | {s['score'] - unpruned:+.3f} |")
    return "\n".join(lines) + "\n"
