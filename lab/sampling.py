"""Generating images with any SanaPipeline, one seed per image.

    images = generate(pipe, ["a photo of two red circles"] * 16, seeds=range(16))   # (16, 64, 64, 3) uint8

Image i starts from the noise of `torch.Generator("cpu").manual_seed(seeds[i])`, so a candidate
is the same image whether generated alone or in a batch, on CPU or GPU. The pipeline is the
sampler: nothing here knows the network.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from lab.model import text_max_length, unknown_prompt_words


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 20  # SANA's default: Flow-DPM-Solver, 20 steps
    guidance_scale: float = 4.5  # SANA's default CFG scale
    batch_size: int = 64  # images per pipeline call


def native_resolution(pipe) -> int:
    """The image side (pixels) the transformer was built for: latent sample_size x VAE factor."""
    return pipe.transformer.config.sample_size * pipe.vae_scale_factor


def _check_prompts(pipe, prompts: Sequence[str]) -> None:
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i} is empty ({p!r}); expected text such as 'a photo of a red circle'")
    unknown = sorted({w for p in prompts for w in unknown_prompt_words(pipe.tokenizer, p)})
    if unknown:
        warnings.warn(f"words unknown to the tokenizer (read as [UNK]): {unknown}", stacklevel=3)


def human_instruction(pipe):
    """SANA's 'complex human instruction' prefix when the tokenizer can read it (real Gemma
    tokenizers), None for lab tokenizers whose vocabulary is the world's words."""
    from diffusers import SanaPipeline

    default = SanaPipeline.__call__.__kwdefaults__ or {}
    instruction = default.get("complex_human_instruction")
    if not instruction or unknown_prompt_words(pipe.tokenizer, " ".join(instruction)):
        return None
    return instruction


@torch.no_grad()
def generate(
    pipe,
    prompts: Sequence[str],
    seeds: Sequence[int],
    sampler: SamplerConfig = SamplerConfig(),
    resolution: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Generates one image per (prompt, seed).

    Args:
        prompts: N prompts (repeat a prompt for several candidates).
        seeds: N integer seeds, one per image.
        resolution: image side in pixels; must be the model's native one (default).
    Returns:
        (N, H, W, 3) uint8 images.
    """
    prompts, seeds = list(prompts), [int(s) for s in seeds]
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds; give one seed per image")
    if not prompts:
        raise ValueError("no prompts given")
    _check_prompts(pipe, prompts)
    native = native_resolution(pipe)
    resolution = resolution or native
    if resolution != native:
        raise ValueError(f"resolution {resolution} is not the one this model was built for ({native}x{native})")
    instruction = human_instruction(pipe)
    out = []
    bar = tqdm(total=len(prompts), desc="generate", disable=not progress, unit="img")
    for i in range(0, len(prompts), sampler.batch_size):
        chunk = prompts[i : i + sampler.batch_size]
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds[i : i + sampler.batch_size]]
        images = pipe(
            prompt=chunk,
            generator=gens,
            num_inference_steps=sampler.steps,
            guidance_scale=sampler.guidance_scale,
            height=resolution,
            width=resolution,
            output_type="np",
            use_resolution_binning=False,
            complex_human_instruction=instruction,
            max_sequence_length=text_max_length(pipe.tokenizer),
        ).images
        out.append((np.clip(images, 0, 1) * 255).round().astype(np.uint8))
        bar.update(len(chunk))
    bar.close()
    return np.concatenate(out)


def nfe_per_image(sampler: SamplerConfig) -> int:
    """Transformer evaluations per image (NFE): one per step, two with classifier-free guidance."""
    return sampler.steps * (2 if sampler.guidance_scale > 1 else 1)


def candidate_seeds(seed: int, n: int) -> list[int]:
    """Seeds of n candidates: candidate i uses seed + i."""
    return [seed + i for i in range(n)]


def benchmark_seeds(base_seed: int, num_prompts: int, images_per_prompt: int) -> list[int]:
    """Seeds for a benchmark run: image j of prompt p uses base + p x images_per_prompt + j."""
    return [base_seed + p * images_per_prompt + j for p in range(num_prompts) for j in range(images_per_prompt)]


CACHE_CHUNK = 256  # images per cached file: the most an interrupted generation loses


def generate_cached(load_pipe, prompts: Sequence[str], seeds: Sequence[int], folder, sampler: SamplerConfig = SamplerConfig(),
                    progress: bool = True, desc: str = "generate") -> tuple[np.ndarray, float]:
    """`generate`, cached on disk in chunks of CACHE_CHUNK images, so a long generation that is
    interrupted (or repeated) only makes what is missing. The folder name must identify the model;
    each chunk is keyed by a digest of its prompts, seeds and sampler settings.

    Args:
        load_pipe: a callable returning the pipeline, called only when something is missing.
        folder: the cache directory of this model.
    Returns:
        (images (N, H, W, 3) uint8, seconds per image measured while generating, NaN if all cached).
    """
    import hashlib
    import json
    import time
    from pathlib import Path

    prompts, seeds = list(prompts), [int(s) for s in seeds]
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds; give one seed per image")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, len(prompts), CACHE_CHUNK):
        key = json.dumps([prompts[start : start + CACHE_CHUNK], seeds[start : start + CACHE_CHUNK], sampler.steps,
                          sampler.guidance_scale])
        paths.append((start, folder / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"))
    missing = [(s, p) for s, p in paths if not p.is_file()]
    seconds, made = 0.0, 0
    if missing:
        pipe = load_pipe()
        bar = tqdm(total=sum(min(CACHE_CHUNK, len(prompts) - s) for s, _ in missing), desc=desc, unit="img",
                   disable=not progress)
        for start, path in missing:
            end = min(start + CACHE_CHUNK, len(prompts))
            t = time.perf_counter()
            images = generate(pipe, prompts[start:end], seeds[start:end], sampler)
            seconds += time.perf_counter() - t
            made += end - start
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez_compressed(tmp, images=images)
            tmp.replace(path)
            bar.update(end - start)
        bar.close()
    images = np.concatenate([np.load(p)["images"] for _, p in paths])
    return images, seconds / made if made else float("nan")
