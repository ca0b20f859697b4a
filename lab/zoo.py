"""The model zoo: trained runs exported to `checkpoints/<name>` with config, log and model card.

    lab export runs/S --name S        # copy the pipeline, evaluate GenEval-mini, write the card

A shipped model is a plain SanaPipeline directory (loads with `SanaPipeline.from_pretrained`)
plus `train_config.yaml`, `train_log.jsonl`, `geneval_<prompt set>.json` (per-image verdicts) and
a README.md model card.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lab.checkpoint import atomic_directory
from lab.provenance import REPO_ROOT

CHECKPOINTS = REPO_ROOT / "checkpoints"


def export_run(run_dir: str | Path, dest: str | Path, name: str, summary: str, reproduce: str,
               prompt_sets: tuple[str, ...] = ("full", "novel"), images_per_prompt: int = 4) -> dict:
    """Copies `run_dir/pipeline` with its config and log to `dest`, evaluates GenEval-mini on each
    prompt set and writes `geneval_<set>.json` and the model card. Returns {set: overall}."""
    from lab.evaluation import evaluate_pipeline, write_model_card
    from lab.geneval import write_report
    from lab.model import load_pipeline
    from lab.runlog import read_log

    run_dir, dest = Path(run_dir), Path(dest)
    if not (run_dir / "pipeline" / "model_index.json").is_file():
        raise ValueError(f"{run_dir} has no finished pipeline (expected {run_dir / 'pipeline'}); train it first")
    pipe = load_pipeline(run_dir / "pipeline")
    # a stored set by name, or a .jsonl path labelled by its stem
    reports = {Path(s).stem: evaluate_pipeline(pipe, s, images_per_prompt)[0] for s in prompt_sets}
    log = read_log(run_dir / "train_log.jsonl")
    with atomic_directory(dest) as tmp:
        shutil.copytree(run_dir / "pipeline", tmp, dirs_exist_ok=True)
        for f in ("train_config.yaml", "train_log.jsonl"):
            shutil.copy2(run_dir / f, tmp / f)
        for s, r in reports.items():
            write_report(r, tmp / f"geneval_{s}.json", model=name, prompts=s, images_per_prompt=images_per_prompt)
        details = {
            "transformer": f"{pipe.transformer.config.num_layers} blocks, width "
                           f"{pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim}, "
                           f"{sum(p.numel() for p in pipe.transformer.parameters()) / 1e6:.2f}M parameters",
            "training": f"{log[-1]['step']} steps, final loss {log[-1]['loss']:.4f} "
                        f"(mean of last 100: {sum(r['loss'] for r in log[-100:]) / len(log[-100:]):.4f})",
            "evaluation": f"{images_per_prompt} images per prompt, seeds 0.., 20 DPM-Solver steps, CFG 4.5",
        }
        write_model_card(tmp / "README.md", name, summary, {f"GenEval-mini {s}": r for s, r in reports.items()},
                         reproduce, details)
    return {s: r.overall for s, r in reports.items()}
