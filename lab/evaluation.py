"""GenEval-mini of a pipeline: generate images for a prompt set and judge them with `lab.geneval`.

    report, images = evaluate_pipeline(pipe, "full", images_per_prompt=4)
    print(report.table())

Image j of prompt p uses seed `seed + p x images_per_prompt + j`, as GenEval generates 4 images
per prompt; every model is therefore judged on the same noise.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def evenly_spaced_prompts(prompts: str, limit: int = 0) -> list[world.Prompt]:
    """The stored prompt set `prompts`, or `limit` evenly spaced prompts of it (the sets are
    grouped by task, so these cover every task); `limit` 0 (or the set's size or more) = all."""
    prompt_set = world.load_prompts(prompts)
    if limit <= 0 or limit >= len(prompt_set):
        return prompt_set
    return [prompt_set[i] for i in np.linspace(0, len(prompt_set) - 1, limit).round().astype(int)]


def autoencoder_fidelity(vae, num_images: int = 512, seed: int = 0, prompts: str = "full") -> geneval.Report:
    """GenEval-mini of VAE reconstructions of clean renders with their true prompts: the
    autoencoder must never be the bottleneck (target >= 0.99 per image)."""
    from lab.vae import reconstruct

    prompt_set = world.load_prompts(prompts)
    chosen = [prompt_set[i % len(prompt_set)] for i in range(num_images)]
    renders = np.stack([world.render_prompt(p, seed + i) for i, p in enumerate(chosen)])
    return geneval.evaluate(reconstruct(vae, renders), chosen)
