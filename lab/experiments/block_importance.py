"""The block-importance study (SANA 1.5 Fig. 6), run by notebooks/block_importance.ipynb.

    cfg = preset(ImportanceStudyConfig, "block_importance", "full")
    metrics = run(cfg, "reports/block_importance")    # also writes importance.json, the ranking
    figs = figures(metrics)

Block importance BI_i = 1 - E cos(h_in, h_out) of every block of a deep model (L), measured inside
real sampling runs of the calibration prompts (`lab.pruning.block_importance`), per block and
timestep; the paper finds the head and tail blocks most important and the middle ones redundant
(`edge_vs_middle`). The notebook adds an interactive explorer (`lab.explorer.BlockExplorer`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.config import config_dict
from lab.evaluation import evenly_spaced_prompts
from lab.pruning import ImportanceTable, block_importance, edge_vs_middle
from lab.sampling import SamplerConfig

METRICS_FILE = "metrics.json"
TABLE_FILE = "importance.json"  # the table (lab.pruning.ImportanceTable), written beside the metrics
HOW_TO_MAKE_L = "grow and train L as the README says (lab grow, lab train --config configs/L.yaml)"


@dataclass(frozen=True)
class ImportanceStudyConfig:
    """One run. Presets: configs/experiments/block_importance.yaml (quick, full)."""

    model: str = "checkpoints/L"  # any SanaPipeline directory (a real SANA 1.5 too)
    stand_in: bool = False  # measure an untrained tiny stand-in when `model` does not exist (quick runs)
    work_dir: str = ""  # where a stand-in is written ("" = a temporary directory)
    prompts: str = "quick"  # calibration prompt set
    prompt_limit: int = 0  # 0 = the whole set; else this many evenly spaced prompts
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # the runs measured: steps = timesteps,
    # guidance_scale, batch_size = prompts per forward pass
    branches: str = "both"  # CFG rows averaged (lab.pruning.BRANCHES)
    seed: int = 0  # prompt i starts from the noise of seed + i
    explorer_prompts: int = 12  # prompts offered in the explorer's menu
    edge_fraction: float = 0.15  # head and tail = this fraction of the blocks each


Config = ImportanceStudyConfig


def measure(pipe, cfg: ImportanceStudyConfig, source: str = "") -> tuple[ImportanceTable, dict]:
    """Block importance of `pipe` on the calibration prompts (no side effects). Returns (table,
    metrics) with metrics {"config", "importance", "edge_vs_middle", "seconds"}."""
    prompts = evenly_spaced_prompts(cfg.prompts, cfg.prompt_limit)
    start = time.perf_counter()
    table = block_importance(
        pipe,
        prompts,
        cfg.sampler.steps,
        cfg.sampler.guidance_scale,
        cfg.branches,
        cfg.seed,
        cfg.sampler.batch_size,
        source=source,
    )
    seconds = time.perf_counter() - start
    return table, {
        "config": config_dict(cfg),
        "importance": table.to_json(),
        "edge_vs_middle": edge_vs_middle(table, cfg.edge_fraction),
        "seconds": seconds,
    }


def explorer_prompts(cfg: ImportanceStudyConfig) -> list[str]:
    """Prompts for the explorer's menu: evenly spaced over the calibration set (every task)."""
    return [p.text for p in evenly_spaced_prompts(cfg.prompts, cfg.explorer_prompts)]


def run(cfg: ImportanceStudyConfig, out: str | Path | None = None, mode: str | None = None) -> dict:
    """Measures the model of `cfg` (or its stand-in). Writes `out/importance.json` and
    `out/metrics.json` when `out` is given (with `mode`, the preset's name, when given). Returns
    `measure`'s metrics plus "model" (the pipeline directory measured) and "label" (how to name it)."""
    from lab.experiments import source_label, source_pipeline, work_directory
    from lab.model import load_pipeline
    from lab.provenance import write_json

    source = source_pipeline(cfg.model, cfg.stand_in, work_directory(cfg.work_dir, "block-importance-"), HOW_TO_MAKE_L)
    table, metrics = measure(load_pipeline(source), cfg, source=str(source))
    metrics |= {**({"mode": mode} if mode else {}), "model": str(source), "label": source_label(cfg.model, source)}
    if out is not None:
        table.save(Path(out) / TABLE_FILE)
        write_json(metrics, Path(out) / METRICS_FILE)
    return metrics


def figures(metrics: dict, stamp: dict | None = None) -> dict:
    """The experiment's figures by name (lab.plots draws them): "importance_lines" (importance vs
    block, a line per timestep and their mean) and "importance_heatmap" (blocks x timesteps)."""
    from lab import plots

    table = ImportanceTable.from_json(metrics["importance"])
    cfg = metrics["config"]
    if stamp is None:
        stamp = {
            "experiment": "block_importance",
            "mode": metrics.get("mode", "?"),
            "model": metrics.get("label", ""),
            "prompts": cfg["prompts"],
            "timesteps": table.num_timesteps,
            "branches": table.branches,
        }
    return {
        "importance_lines": plots.block_importance_lines(table, stamp=stamp),
        "importance_heatmap": plots.importance_heatmap(table, stamp=stamp),
    }
