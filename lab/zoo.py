"""The model zoo: trained runs exported to `checkpoints/<name>` with config, log and model card.

    lab export runs/S --name S        # copy the pipeline, evaluate GenEval-mini, write the card
    pipe = resolve_model("L@12")      # a shipped model by name, here L pruned to 12 blocks on load

A shipped model is a plain SanaPipeline directory (loads with `SanaPipeline.from_pretrained`)
plus `train_config.yaml`, `train_log.jsonl`, `geneval_<prompt set>.json` (per-image verdicts), a
README.md model card, and — for a model trained on from a grown or pruned one — the `growth.json`
or `pruning.json` record naming the model it came from. `training_cost` follows those records
back to the first model trained from scratch.

Also here: model cards (`write_model_card`, for the judge too), and the starts of runs that no
trained model precedes — an untrained stand-in for quick runs (`stand_in_dir`) and a trained
model's components around a fresh transformer (`fresh_pipeline_dir`).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from lab.checkpoint import atomic_directory
from lab.provenance import REPO_ROOT, repo_path

CHECKPOINTS = REPO_ROOT / "checkpoints"
LINEAGE_RECORDS = ("growth.json", "pruning.json")  # written by lab grow / lab prune; "source" names the parent
DEPTH_SEPARATOR = "@"  # `L@12`: the model L pruned to 12 blocks on load
IMPORTANCE_TABLE = "importance.json"  # the block ranking shipped beside a deep model (lab.pruning.ImportanceTable)
MODEL_CARD = "README.md"  # the model card inside a pipeline directory
STAND_IN_SIZE = "tiny-4"  # lab.model.SIZES entry of quick runs' untrained stand-in for a trained model
STAND_IN_VAE = "tiny"  # lab.model.VAE_SIZES entry of its autoencoder


@dataclass(frozen=True)
class ModelSpec:
    """A model named on a command line or in an app: a SanaPipeline directory, optionally pruned on load."""

    path: Path  # the SanaPipeline directory
    depth: int | None = None  # blocks kept by importance (the directory's importance.json); None = all

    @property
    def source_layers(self) -> int:
        """Blocks of the stored transformer (read from its config, no weights loaded)."""
        return json.loads((self.path / "transformer" / "config.json").read_text())["num_layers"]


def shipped_models() -> list[str]:
    """Names of the pipelines under checkpoints/ (`--model S`)."""
    return sorted(p.parent.name for p in CHECKPOINTS.glob("*/model_index.json"))


def _locate(name: str) -> Path:
    """`name` from the working directory first, then the repository root, then checkpoints/."""
    path = repo_path(name)
    if not path.exists() and not Path(name).is_absolute() and (CHECKPOINTS / name).exists():
        return CHECKPOINTS / name
    return path if path.exists() else Path(name)


def model_spec(spec: str | Path) -> ModelSpec:
    """Reads a model spec — a path, a shipped name (`S`, `L`), either with `@depth` (`L@12`) — and
    checks it names a SanaPipeline (and a valid depth with an importance table) without loading
    weights. Relative paths: the working directory first, then the repository root.

    Raises ValueError naming the spec and what is accepted.
    """
    from lab.model import check_pipeline_dir
    from lab.pruning import check_depth

    text = str(spec)
    head, sep, tail = text.rpartition(DEPTH_SEPARATOR)
    name, depth = (head, tail) if sep and tail.isdigit() else (text, None)
    if not name.strip():
        raise ValueError(f"empty model name {text!r}; expected a SanaPipeline directory or one of {shipped_models()}")
    path = _locate(name)
    if not path.exists():
        raise ValueError(
            f"model {name!r} does not exist (looked in the working directory, {REPO_ROOT} and "
            f"{CHECKPOINTS}); expected a SanaPipeline directory or a shipped name: "
            f"{', '.join(shipped_models())} (optionally NAME{DEPTH_SEPARATOR}DEPTH)"
        )
    check_pipeline_dir(path)
    if depth is None:
        return ModelSpec(path)
    check_depth(ModelSpec(path).source_layers, int(depth))
    if not (path / IMPORTANCE_TABLE).is_file():
        raise ValueError(f"{text}: {path} has no {IMPORTANCE_TABLE} to prune by; measure one with lab prune")
    return ModelSpec(path, int(depth))


def model_path(spec: str | Path) -> Path:
    """The SanaPipeline directory a model spec names (see `model_spec`)."""
    return model_spec(spec).path


def resolve_model(spec: str | Path, device: str = "cpu", dtype=None):
    """Loads the SanaPipeline a model spec names (see `model_spec`), pruned on load for `NAME@DEPTH`."""
    import torch

    from lab.model import load_pipeline
    from lab.pruning import load_pruned

    m = model_spec(spec)
    dtype = dtype or torch.float32
    if m.depth is None:
        return load_pipeline(m.path, device=device, dtype=dtype)
    return load_pruned(m.path, m.depth, m.path / IMPORTANCE_TABLE, device=device, dtype=dtype)


FP16_PROBE_PROMPTS = 60  # evenly spaced full-set prompts, 1 image each, on which fp16 rounding is checked


def fp16_agreement(pipe, rounded, prompts: int = FP16_PROBE_PROMPTS) -> dict:
    """How far fp16 rounding moved a pipeline: both generate the same images (`prompts` evenly spaced
    full-set prompts, 1 image each, the evaluation's seeds). Returns {"images", "same_verdicts"
    (GenEval-mini verdicts that agree), "mean_abs_pixel_difference" (0-255)}."""
    import numpy as np

    from lab.evaluation import evaluate_pipeline, evenly_spaced_prompts

    chosen = evenly_spaced_prompts("full", prompts)
    (a, images_a), (b, images_b) = (evaluate_pipeline(p, chosen, 1, progress=False) for p in (pipe, rounded))
    return {
        "images": len(images_a),
        "same_verdicts": sum(x.correct == y.correct for x, y in zip(a.verdicts, b.verdicts)),
        "mean_abs_pixel_difference": float(np.abs(images_a.astype(np.float64) - images_b).mean()),
    }


def export_run(
    run_dir: str | Path,
    dest: str | Path,
    name: str,
    summary: str,
    reproduce: str,
    prompt_sets: tuple[str, ...] = ("full", "novel"),
    images_per_prompt: int = 4,
    fp16: bool = False,
) -> dict:
    """Copies `run_dir/pipeline` with its config and log to `dest`, evaluates GenEval-mini on each
    prompt set and writes `geneval_<set>.json` and the model card. Returns {set: overall}.

    `fp16`: ship the weights in fp16 (half the bytes). The scores are then those of the rounded
    weights, the ones shipped, and the card says how far rounding moved the model (`fp16_agreement`)."""
    from lab.evaluation import evaluate_pipeline
    from lab.geneval import write_report
    from lab.model import load_pipeline, round_weights_to_fp16, save_fp16
    from lab.runlog import read_log
    from lab.sampling import SamplerConfig

    run_dir, dest = Path(run_dir), Path(dest)
    if not (run_dir / "pipeline" / "model_index.json").is_file():
        raise ValueError(f"{run_dir} has no finished pipeline (expected {run_dir / 'pipeline'}); train it first")
    pipe = load_pipeline(run_dir / "pipeline")
    agreement = None
    if fp16:
        full, pipe = pipe, load_pipeline(run_dir / "pipeline")
        round_weights_to_fp16(pipe)
        agreement = fp16_agreement(full, pipe)
    # a stored set by name, or a .jsonl path labelled by its stem
    reports = {Path(s).stem: evaluate_pipeline(pipe, s, images_per_prompt)[0] for s in prompt_sets}
    log = read_log(run_dir / "train_log.jsonl")
    with atomic_directory(dest) as tmp:
        shutil.copytree(run_dir / "pipeline", tmp, dirs_exist_ok=True)
        if fp16:
            save_fp16(pipe, tmp)  # replaces the copied fp32 weight files
        for f in ("train_config.yaml", "train_log.jsonl"):
            shutil.copy2(run_dir / f, tmp / f)
        record = lineage_record(_init_from(run_dir / "train_config.yaml"))
        if record is not None:  # the run's start (runs/L_init, ...) is not shipped: keep where it came from
            shutil.copy2(record, tmp / record.name)
        for s, r in reports.items():
            write_report(r, tmp / f"geneval_{s}.json", model=name, prompts=s, images_per_prompt=images_per_prompt)
        sampler = SamplerConfig()  # evaluate_pipeline's
        details = {
            "transformer": f"{pipe.transformer.config.num_layers} blocks, width "
            f"{pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim}, "
            f"{sum(p.numel() for p in pipe.transformer.parameters()) / 1e6:.2f}M parameters",
            "training": f"{log[-1]['step']} steps, final loss {log[-1]['loss']:.4f} "
            f"(mean of last 100: {sum(r['loss'] for r in log[-100:]) / len(log[-100:]):.4f})",
            "evaluation": f"{images_per_prompt} image{'s' if images_per_prompt > 1 else ''} per prompt, seeds 0.., "
            f"{sampler.steps} DPM-Solver steps, CFG {sampler.guidance_scale}",
        }
        if agreement is not None:
            details["weights"] = (
                f"stored in fp16 (scores above are of these weights); against the fp32 ones on "
                f"{agreement['images']} images: the same verdict for {agreement['same_verdicts']}, mean |pixel "
                f"difference| {agreement['mean_abs_pixel_difference']:.2f} of 255"
            )
        sections = {
            "GenEval-mini": geneval_table({f"GenEval-mini {s}": r for s, r in reports.items()}),
            "Reproduce": f"```bash\n{reproduce}\n```",
            "Details": details_list(details),
        }
        write_model_card(tmp, name, summary, sections)
    return {s: r.overall for s, r in reports.items()}


def rescore(
    model_dir: str | Path, prompt_sets: tuple[str, ...] = ("full", "novel"), images_per_prompt: int = 4
) -> dict:
    """Re-evaluates a shipped model with the current evaluator: regenerates `images_per_prompt`
    images per prompt (seeds 0.., as `export_run`), rewrites `geneval_<set>.json` and the card's
    GenEval-mini section (table with bootstrap intervals, and the scores it replaces).
    Returns {set: {"before": overall or None, "after": overall, "interval": (lo, hi)}}."""
    import json

    from lab.evaluation import evaluate_pipeline
    from lab.geneval import write_report
    from lab.model import load_pipeline
    from lab.provenance import git_commit

    model_dir = Path(model_dir)
    card = model_dir / MODEL_CARD
    if not card.is_file() or "## GenEval-mini" not in card.read_text() or "## Reproduce" not in card.read_text():
        raise ValueError(f"{card} is not a model card with '## GenEval-mini' and '## Reproduce' sections")
    pipe = load_pipeline(model_dir)
    out, reports = {}, {}
    for s in prompt_sets:
        old = model_dir / f"geneval_{Path(s).stem}.json"
        before = json.loads(old.read_text()) if old.is_file() else {}
        report = evaluate_pipeline(pipe, s, images_per_prompt, progress=False)[0]
        write_report(report, old, model=model_dir.name, prompts=s, images_per_prompt=images_per_prompt)
        reports[f"GenEval-mini {Path(s).stem}"] = report
        out[Path(s).stem] = {
            "before": before.get("overall"),
            "before_images_per_prompt": before.get("images_per_prompt"),
            "after": report.overall,
            "interval": report.interval().overall_interval,
        }
    text = card.read_text()
    head, rest = text.split("## GenEval-mini", 1)
    tail = rest[rest.index("## Reproduce") :]
    was = ", ".join(
        f"{s} {v['before']:.3f} ({v['before_images_per_prompt']} per prompt)"
        for s, v in out.items()
        if v["before"] is not None
    )
    note = (
        f"Scored by the hardened evaluator (touching objects split, non-objects and unrecognised shapes "
        f"never counted) at lab commit {git_commit()}, {images_per_prompt} images per prompt; the interval "
        f"is a 95% bootstrap over prompts and images. Before re-scoring: {was}."
    )
    tail = re.sub(
        r"- \*\*evaluation\*\*: \d+ images? per prompt",
        f"- **evaluation**: {images_per_prompt} images per prompt",
        tail,
    )
    card.write_text(f"{head}## GenEval-mini\n\n{geneval_table(reports)}\n{note}\n\n{tail}")
    return out


# --- model cards ---------------------------------------------------------------------------------------


def geneval_table(reports: dict) -> str:
    """Markdown of `lab.geneval.Report`s: one column per report (e.g. GenEval-mini full, novel), one
    row per task, then the overall score and its 95% bootstrap interval."""
    from lab import world

    tasks = [t for t in world.TASKS if any(t in r.task_accuracy for r in reports.values())]
    head = "| task | " + " | ".join(reports) + " |\n|---|" + "---:|" * len(reports) + "\n"
    rows = []
    for t in tasks:
        cells = [f"{r.task_accuracy[t]:.3f}" if t in r.task_accuracy else "–" for r in reports.values()]
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    rows.append("| **overall** | " + " | ".join(f"**{r.overall:.3f}**" for r in reports.values()) + " |")
    intervals = [r.interval().overall_interval for r in reports.values()]
    rows.append(
        "| 95% interval (bootstrap over prompts and images) | "
        + " | ".join(f"{lo:.3f}-{hi:.3f}" for lo, hi in intervals)
        + " |"
    )
    return head + "\n".join(rows) + "\n"


def details_list(details: dict) -> str:
    """Markdown bullets `- **key**: value`, ending with the lab commit that wrote them."""
    from lab.provenance import git_commit

    return "\n".join([f"- **{k}**: {v}" for k, v in details.items()] + [f"- **lab commit**: {git_commit()}"])


def write_model_card(directory: str | Path, name: str, summary: str, sections: dict[str, str]) -> Path:
    """Writes the model card `directory/README.md`: `# name`, the summary, then one `## heading`
    per entry of `sections` (heading -> markdown). Returns its path."""
    lines = [f"# {name}", "", summary, ""]
    for heading, text in sections.items():
        lines += [f"## {heading}", "", text, ""]
    path = Path(directory) / MODEL_CARD
    path.write_text("\n".join(lines))
    return path


# --- starts of runs ----------------------------------------------------------------------------------


def stand_in_dir(directory: str | Path, size: str = STAND_IN_SIZE, seed: int = 0) -> Path:
    """An untrained tiny pipeline (`size` of lab.model.SIZES, the tiny VAE) saved to
    `directory/source`: what quick runs use where no trained model exists. Returns its path."""
    import torch

    from lab.model import build_pipeline, build_vae, quiet_hub_logging

    quiet_hub_logging()
    torch.manual_seed(seed)
    pipe = build_pipeline(size, vae=build_vae(STAND_IN_VAE))
    path = Path(directory) / "source"
    with atomic_directory(path) as tmp:
        pipe.save_pretrained(tmp)
    return path


def fresh_pipeline_dir(source: str | Path, out: str | Path, num_layers: int, seed: int = 0) -> Path:
    """The start of a from-scratch run beside a trained model: the tokenizer, text encoder, VAE and
    scheduler of the pipeline in `source` with a freshly initialised transformer of its shape and
    `num_layers` blocks, saved to `out` atomically. Returns `out`."""
    import torch
    from diffusers import SanaPipeline, SanaTransformer2DModel

    from lab.model import load_pipeline

    pipe = load_pipeline(source)
    torch.manual_seed(seed)
    fresh = SanaTransformer2DModel.from_config({**pipe.transformer.config, "num_layers": num_layers})
    pipe = SanaPipeline(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        vae=pipe.vae,
        transformer=fresh,
        scheduler=pipe.scheduler,
    )
    out = Path(out)
    with atomic_directory(out) as tmp:
        pipe.save_pretrained(tmp)
    return out


# --- lineage -----------------------------------------------------------------------------------------


def _init_from(config: Path) -> Path | None:
    import yaml

    if not config.is_file():
        return None
    init = (yaml.safe_load(config.read_text()) or {}).get("init_from")
    return repo_path(init) if init else None


def lineage_record(model_dir: str | Path | None) -> Path | None:
    """The growth or pruning record in `model_dir` (see `LINEAGE_RECORDS`), or None."""
    if model_dir is None:
        return None
    return next((Path(model_dir) / f for f in LINEAGE_RECORDS if (Path(model_dir) / f).is_file()), None)


def training_cost(model_dir: str | Path) -> int | None:
    """Transformer training compute behind the model in `model_dir`, in block-images (blocks x
    images, summed over every run in its lineage): its own run (depth x steps x batch, from
    `train_config.yaml` beside it or in its run directory) plus, through its growth/pruning record
    or its `init_from`, the cost of the model it started from. The blocks dominate the FLOPs and a
    block costs the same in every model of one width, so block-images compare models of one width.

    Returns None when a run in the lineage has no `train_config.yaml` (cost unknown). A model
    started from a fresh transformer (no record, no config at `init_from`) adds nothing.
    """
    import json

    import yaml

    model_dir = Path(model_dir)
    config = next(
        (c for c in (model_dir / "train_config.yaml", model_dir.parent / "train_config.yaml") if c.is_file()), None
    )
    own, start = 0, None
    if config is not None:
        c = yaml.safe_load(config.read_text()) or {}
        depth = json.loads((model_dir / "transformer" / "config.json").read_text())["num_layers"]
        own = depth * int(c["steps"]) * int(c["batch_size"])
        start = _init_from(config)
    record = lineage_record(model_dir) or lineage_record(start)
    if record is not None:
        parent = repo_path(json.loads(record.read_text())["source"])
    elif start is not None and (start / "train_config.yaml").is_file():
        parent = start  # trained on from a shipped model
    elif config is None:
        return None  # neither trained here nor derived from a known model
    else:
        return own  # trained from a fresh transformer
    before = training_cost(parent)
    return None if before is None else own + before
