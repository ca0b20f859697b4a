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
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lab import world
from lab.model import text_max_length, unknown_prompt_words


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 20  # SANA's default: Flow-DPM-Solver, 20 steps (>= 1)
    guidance_scale: float = 4.5  # SANA's default CFG scale (>= 0; <= 1 means no guidance)
    batch_size: int = 64  # images per pipeline call (>= 1)

    def __post_init__(self):
        for name, value, least in (
            ("steps", self.steps, 1),
            ("guidance_scale", self.guidance_scale, 0),
            ("batch_size", self.batch_size, 1),
        ):
            if not value >= least:
                raise ValueError(f"sampler {name} {value!r} is out of range; expected >= {least}")


def native_resolution(pipe) -> int:
    """The image side (pixels) the transformer was built for: latent sample_size x VAE factor."""
    return pipe.transformer.config.sample_size * pipe.vae_scale_factor


def _check_prompts(pipe, prompts: Sequence[str]) -> None:
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i} is empty ({p!r}); expected text such as 'a photo of a red circle'")
    unknown = sorted({w for p in prompts for w in unknown_prompt_words(pipe.tokenizer, p)})
    if unknown:
        warnings.warn(f"words unknown to the tokenizer (read as [UNK]): {unknown}", stacklevel=USER_STACKLEVEL)
    if human_instruction(pipe) is None:  # a lab model: trained on world.sample_training_prompt's prompts only
        new = [
            p for p in dict.fromkeys(prompts) if p not in _WARNED_UNTRAINED and not world.in_training_distribution(p)
        ]
        _WARNED_UNTRAINED.update(new)
        if new:  # one warning per call: a benchmark set of held-out prompts (novel) is one message, not 100
            what = (
                f"prompt {new[0]!r} is"
                if len(new) == 1
                else f"{len(new)} prompts are (e.g. {', '.join(repr(p) for p in new[:UNTRAINED_EXAMPLES])})"
            )
            warnings.warn(
                f"{what} outside what lab models were trained on (GenEval's templates with 'a photo of', "
                "no colour on counts or positions, no held-out colour-shape pair); expect weaker images",
                stacklevel=USER_STACKLEVEL,
            )


USER_STACKLEVEL = 3  # warnings about prompts point at the caller of generate (the user's input)
_WARNED_UNTRAINED: set[str] = set()  # prompts already warned about: once per prompt per process
UNTRAINED_EXAMPLES = 3  # prompts named in a warning about several


def human_instruction(pipe):
    """SANA's 'complex human instruction' prefix when the tokenizer can read it (real Gemma
    tokenizers), None for lab tokenizers whose vocabulary is the world's words."""
    from diffusers import SanaPipeline

    default = SanaPipeline.__call__.__kwdefaults__ or {}
    instruction = default.get("complex_human_instruction")
    if not instruction or unknown_prompt_words(pipe.tokenizer, " ".join(instruction)):
        return None
    return instruction


def encode_prompts(pipe, prompts: Sequence[str], guidance: bool):
    """The pipeline's own text encoding of `prompts` (SANA's instruction prefix where the tokenizer
    reads it, the model's prompt length): (embeds (B, L, D), mask (B, L), and with `guidance` the
    empty prompt's negative embeds and mask, else None, None)."""
    return pipe.encode_prompt(
        list(prompts),
        guidance,
        device=pipe._execution_device,
        max_sequence_length=text_max_length(pipe.tokenizer),
        complex_human_instruction=human_instruction(pipe),
    )


def generate(
    pipe,
    prompts: Sequence[str],
    seeds: Sequence[int],
    sampler: SamplerConfig = SamplerConfig(),
    resolution: int | None = None,
    progress: bool = False,
    step_progress: bool = False,
) -> np.ndarray:
    """Generates one image per (prompt, seed).

    Args:
        prompts: N prompts (repeat a prompt for several candidates).
        seeds: N integer seeds, one per image.
        resolution: image side in pixels; must be the model's native one (default).
        progress: a bar counting images; `step_progress`: a bar counting denoising steps of every
            batch instead (for a few slow images, e.g. `lab generate`).
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
    batches = range(0, len(prompts), sampler.batch_size)
    if step_progress:
        bar = tqdm(total=len(batches) * sampler.steps, desc="denoise", unit="step")
    else:
        bar = tqdm(total=len(prompts), desc="generate", disable=not progress, unit="img")

    def count_step(pipeline, step, timestep, tensors):  # SanaPipeline's callback_on_step_end
        bar.update(1)
        return tensors

    with torch.no_grad():
        for i in batches:
            out.append(
                _generate_batch(
                    pipe,
                    prompts[i : i + sampler.batch_size],
                    seeds[i : i + sampler.batch_size],
                    sampler,
                    resolution,
                    instruction,
                    count_step if step_progress else None,
                )
            )
            if not step_progress:
                bar.update(len(out[-1]))
    bar.close()
    return np.concatenate(out)


def nfe_per_image(sampler: SamplerConfig) -> int:
    """Transformer evaluations per image (NFE): one per step, two with classifier-free guidance."""
    return sampler.steps * (2 if sampler.guidance_scale > 1 else 1)


def _generate_batch(
    pipe, prompts: list[str], seeds: list[int], sampler: SamplerConfig, resolution: int, instruction, callback
) -> np.ndarray:
    """One pipeline call for B prompts with their seeds. Returns (B, H, W, 3) uint8."""
    images = pipe(
        prompt=prompts,
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        num_inference_steps=sampler.steps,
        guidance_scale=sampler.guidance_scale,
        height=resolution,
        width=resolution,
        output_type="np",
        use_resolution_binning=False,
        complex_human_instruction=instruction,
        max_sequence_length=text_max_length(pipe.tokenizer),
        callback_on_step_end=callback,
    ).images
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def candidate_seeds(seed: int, n: int) -> list[int]:
    """Seeds of n candidates: candidate i uses seed + i."""
    return [seed + i for i in range(n)]


def benchmark_seeds(base_seed: int, num_prompts: int, images_per_prompt: int) -> list[int]:
    """Seeds for a benchmark run: image j of prompt p uses base + p x images_per_prompt + j."""
    return [base_seed + p * images_per_prompt + j for p in range(num_prompts) for j in range(images_per_prompt)]


CACHE_CHUNK = 256  # images per cached file: the most an interrupted generation loses


def model_cache_dir(root, model) -> Path:
    """Where `generate_cached` keeps one model's samples under `root`: its name (or path) and a digest
    of its transformer's weights, and for a model pruned on load (`L@12`) of the block ranking it is
    pruned by, so a model retrained or re-ranked under the same name (S v2 replacing S) never reuses
    the samples of the one it replaced, and a fresh checkout still finds its cache."""
    import hashlib

    from lab.zoo import IMPORTANCE_TABLE, model_spec

    spec = model_spec(model)
    files = sorted((spec.path / "transformer").glob("*.safetensors"))
    if spec.depth is not None:
        files.append(spec.path / IMPORTANCE_TABLE)
    digest = hashlib.sha1(b"".join(f.read_bytes() for f in files)).hexdigest()[:12] if files else "unknown"
    return Path(root) / f"{str(model).replace('/', '_')}-{digest}"


def generate_cached(
    load_pipe,
    prompts: Sequence[str],
    seeds: Sequence[int],
    folder,
    sampler: SamplerConfig = SamplerConfig(),
    progress: bool = True,
    desc: str = "generate",
) -> tuple[np.ndarray, float]:
    """`generate`, cached on disk in chunks of CACHE_CHUNK images, so a long generation that is
    interrupted (or repeated) only makes what is missing. The folder must identify the model (see
    `model_cache_dir`); each chunk is keyed by a digest of its prompts, seeds and sampler settings.

    Args:
        load_pipe: a callable returning the pipeline, called only when something is missing.
        folder: the cache directory of this model.
    Returns:
        (images (N, H, W, 3) uint8, seconds per image measured while generating, NaN if all cached).
    """
    import hashlib
    import json
    import time

    prompts, seeds = list(prompts), [int(s) for s in seeds]
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds; give one seed per image")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, len(prompts), CACHE_CHUNK):
        key = json.dumps(
            [
                prompts[start : start + CACHE_CHUNK],
                seeds[start : start + CACHE_CHUNK],
                sampler.steps,
                sampler.guidance_scale,
            ]
        )
        paths.append((start, folder / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"))
    missing = [(s, p) for s, p in paths if not p.is_file()]
    seconds, made = 0.0, 0
    if missing:
        pipe = load_pipe()
        bar = tqdm(
            total=sum(min(CACHE_CHUNK, len(prompts) - s) for s, _ in missing),
            desc=desc,
            unit="img",
            disable=not progress,
        )
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
