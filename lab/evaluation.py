"""GenEval-mini of a pipeline: generate images for a prompt set and judge them with `lab.geneval`.

    report, images = evaluate_pipeline(pipe, "full", images_per_prompt=4)
    print(report.table())

Image j of prompt p uses seed `seed + p x images_per_prompt + j`, as GenEval generates 4 images
per prompt; every model is therefore judged on the same noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lab import geneval, world
from lab.sampling import SamplerConfig, benchmark_seeds, generate

IMAGES_PER_PROMPT = 4  # GenEval's


def evaluate_pipeline(
    pipe,
    prompts: str | Sequence[world.Prompt] = "full",
    images_per_prompt: int = IMAGES_PER_PROMPT,
    sampler: SamplerConfig = SamplerConfig(),
    seed: int = 0,
    progress: bool = True,
) -> tuple[geneval.Report, np.ndarray]:
    """Generates `images_per_prompt` images per prompt and judges them.

    Returns (report, images (N x images_per_prompt, H, W, 3) uint8), images in prompt order.
    """
    prompt_set = world.load_prompts(prompts) if isinstance(prompts, str) else list(prompts)
    if images_per_prompt < 1:
        raise ValueError(f"images_per_prompt must be >= 1, got {images_per_prompt}")
    expanded = [p for p in prompt_set for _ in range(images_per_prompt)]
    seeds = benchmark_seeds(seed, len(prompt_set), images_per_prompt)
    images = generate(pipe, [p.text for p in expanded], seeds, sampler, progress=progress)
    report = geneval.evaluate(images, expanded)
    report.prompt_indices = [i for i in range(len(prompt_set)) for _ in range(images_per_prompt)]
    report.seeds = list(seeds)
    return report, images


def markdown_table(reports: dict[str, geneval.Report]) -> str:
    """A markdown table: one column per report (e.g. GenEval-mini full, novel), one row per task."""
    tasks = [t for t in world.TASKS if any(t in r.task_accuracy for r in reports.values())]
    head = "| task | " + " | ".join(reports) + " |\n|---|" + "---:|" * len(reports) + "\n"
    rows = []
    for t in tasks:
        cells = [f"{r.task_accuracy[t]:.3f}" if t in r.task_accuracy else "–" for r in reports.values()]
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    rows.append("| **overall** | " + " | ".join(f"**{r.overall:.3f}**" for r in reports.values()) + " |")
    intervals = [r.interval().overall_interval for r in reports.values()]
    rows.append("| 95% interval (bootstrap over prompts and images) | " + " | ".join(f"{lo:.3f}-{hi:.3f}" for lo, hi in intervals) + " |")
    return head + "\n".join(rows) + "\n"


def write_model_card(path: str | Path, name: str, summary: str, reports: dict[str, geneval.Report],
                     reproduce: str, details: dict) -> Path:
    """Writes a model card (README.md in the pipeline directory) with its GenEval-mini table."""
    from lab.provenance import git_commit

    lines = [f"# {name}", "", summary, "", "## GenEval-mini", "", markdown_table(reports), "",
             "## Reproduce", "", "```bash", reproduce, "```", "", "## Details", ""]
    lines += [f"- **{k}**: {v}" for k, v in details.items()]
    lines += [f"- **lab commit**: {git_commit()}", ""]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path


def autoencoder_fidelity(vae, num_images: int = 512, seed: int = 0, prompts: str = "full") -> geneval.Report:
    """GenEval-mini of VAE reconstructions of clean renders with their true prompts: the
    autoencoder must never be the bottleneck (target >= 0.99 per image)."""
    from lab.vae import reconstruct

    prompt_set = world.load_prompts(prompts)
    chosen = [prompt_set[i % len(prompt_set)] for i in range(num_images)]
    renders = np.stack([world.render_prompt(p, seed + i) for i, p in enumerate(chosen)])
    return geneval.evaluate(reconstruct(vae, renders), chosen)
