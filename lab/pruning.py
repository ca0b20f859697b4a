"""Block importance and depth pruning (SANA 1.5 §2.3, Fig. 6-7).

    table = block_importance(pipe, prompts, timesteps=20)     # blocks x timesteps, plus the mean
    small = prune_depth(pipe.transformer, 12, by="importance", importance=table)
    prune_pipeline_dir("checkpoints/L", "runs/L12", 12, importance=table)   # a complete pipeline on disk
    table.save("importance.json"); pipe = load_pruned("checkpoints/L", 12, "importance.json")

A block's importance is how much it changes its input: BI_i = 1 - cos(h_in, h_out), the cosine
taken per token over channels and averaged over tokens, calibration prompts and the denoising
timesteps (the paper's formula; ShortGPT uses the same one for LLMs). The hidden states are those
of a real sampling run: the pipeline's own text encoder, noise, scheduler and classifier-free
guidance drive the transformer, and forward hooks on every block read input and output in the
same pass, so one analysis costs one transformer forward per (prompt batch, timestep).

Pruning keeps a subset of blocks, in their order, and writes the new depth into the config, so a
pruned transformer saves and loads like any other (`num_layers` == number of blocks).
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lab.sampling import SamplerConfig, candidate_seeds, encode_prompts, native_resolution

METHODS = ("importance", "last", "uniform", "random")  # how prune_depth picks the blocks to keep
BRANCHES = ("both", "cond")  # CFG rows averaged: both halves of the batch, or the conditional one
# The sampling run the importance is measured in: the sampler's defaults (SANA's), `timesteps` =
# its steps and a batch of prompts per forward pass (x2 with CFG).
DEFAULT_TIMESTEPS, DEFAULT_GUIDANCE, DEFAULT_BATCH = (
    SamplerConfig.steps,
    SamplerConfig.guidance_scale,
    SamplerConfig.batch_size,
)
COSINE_EPS = 1e-8  # guards all-zero tokens in the cosine


# --- the importance table ------------------------------------------------------------------------


@dataclass
class ImportanceTable:
    """Block importance 1 - cos(h_in, h_out), per block and timestep.

    `values` is (num_blocks, num_timesteps); column j belongs to the scheduler timestep
    `timesteps[j]` (in [0, 1000], noisiest first). `mean` averages over timesteps (the paper's BI).
    """

    values: np.ndarray  # (num_blocks, num_timesteps), unitless, 0 = the block leaves its input unchanged
    timesteps: np.ndarray  # (num_timesteps,) scheduler timesteps, in sampling order
    num_prompts: int = 0  # calibration prompts averaged
    branches: str = "both"  # CFG rows averaged (BRANCHES)
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0  # prompt i started from the noise of seed + i
    source: str = ""  # the model measured (a path or a name), for the record
    prompts: list[str] = field(default_factory=list)  # the calibration prompts

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=np.float64)
        self.timesteps = np.asarray(self.timesteps, dtype=np.float64)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.timesteps) or self.values.shape[0] < 1:
            raise ValueError(
                f"importance values of shape {self.values.shape} for {len(self.timesteps)} timesteps; "
                "expected (num_blocks >= 1, num_timesteps)"
            )

    @property
    def num_blocks(self) -> int:
        return self.values.shape[0]

    @property
    def num_timesteps(self) -> int:
        return self.values.shape[1]

    @property
    def mean(self) -> np.ndarray:
        """(num_blocks,) importance averaged over timesteps."""
        return self.values.mean(axis=1)

    def ranking(self) -> list[int]:
        """Block indices, most important first (ties: the earlier block first)."""
        return [int(i) for i in np.argsort(-self.mean, kind="stable")]

    def to_json(self) -> dict:
        return {
            "num_blocks": self.num_blocks,
            "timesteps": self.timesteps.tolist(),
            "values": self.values.tolist(),
            "mean": self.mean.tolist(),
            "ranking": self.ranking(),
            "num_prompts": self.num_prompts,
            "branches": self.branches,
            "guidance_scale": self.guidance_scale,
            "seed": self.seed,
            "source": self.source,
            "prompts": list(self.prompts),
        }

    @staticmethod
    def from_json(d: dict) -> ImportanceTable:
        missing = [k for k in ("values", "timesteps") if k not in d]
        if missing:
            raise ValueError(f"importance JSON lacks {missing}; expected the keys written by ImportanceTable.to_json")
        meta = {k: d[k] for k in ("num_prompts", "branches", "guidance_scale", "seed", "source", "prompts") if k in d}
        return ImportanceTable(np.asarray(d["values"]), np.asarray(d["timesteps"]), **meta)

    def save(self, path: str | Path) -> Path:
        """Writes the table as JSON (with provenance), atomically."""
        from lab.provenance import write_json

        return write_json(self.to_json(), path)

    @staticmethod
    def load(path: str | Path) -> ImportanceTable:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no importance table at {path}; write one with `lab prune` or ImportanceTable.save")
        try:
            return ImportanceTable.from_json(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e


def edge_vs_middle(table: ImportanceTable, edge_fraction: float = 0.15) -> dict[str, float]:
    """Mean importance of the head blocks, the middle ones and the tail blocks (the paper: head and
    tail matter most). The head and the tail each hold `edge_fraction` of the blocks (at least one)."""
    n = table.num_blocks
    edge = max(1, round(n * edge_fraction))
    mean = table.mean
    middle = mean[edge : n - edge]
    return {
        "head": float(mean[:edge].mean()),
        "middle": float(middle.mean()) if len(middle) else float("nan"),
        "tail": float(mean[n - edge :].mean()),
        "edge_blocks": edge,
    }


# --- one sampling run, observed block by block ---------------------------------------------------


@dataclass
class BlockTrace:
    """What every block did during one batch of sampling runs.

    similarity: (num_steps, num_blocks, num_branches, B) mean token cosine of each block's input
        and output; branch order follows `branches` (("uncond", "cond") with CFG, else ("cond",)).
    timesteps: (num_steps,) scheduler timesteps; sigmas: (num_steps,) noise levels in [0, 1].
    predictions: (num_steps, B, C, h, w) the denoised-latent estimate x0 = x_t - sigma v at each
        step (flow matching), when asked for; latents: (B, C, h, w) the final latents.
    """

    similarity: np.ndarray
    timesteps: np.ndarray
    sigmas: np.ndarray
    branches: tuple[str, ...]
    latents: torch.Tensor
    predictions: torch.Tensor | None = None

    def importance(self, branches: str = "both") -> np.ndarray:
        """(num_steps, num_blocks, B) 1 - cosine, averaged over the CFG rows `branches` selects."""
        _check_choice("branches", branches, BRANCHES)
        rows = [self.branches.index("cond")] if branches == "cond" else list(range(len(self.branches)))
        return 1.0 - self.similarity[:, :, rows].mean(axis=2)


def token_cosine(h_in: torch.Tensor, h_out: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each token's input and output, averaged over tokens.

    Args: h_in, h_out: (B, N, D) hidden states of N tokens. Returns: (B,) float32.
    """
    return F.cosine_similarity(h_in.float(), h_out.float(), dim=-1, eps=COSINE_EPS).mean(dim=1)


@contextlib.contextmanager
def _record_blocks(blocks) -> Iterator[list]:
    """Forward hooks on every block; yields a list whose entry i holds block i's (rows,) token
    cosine from the latest forward. The hooks are removed on exit, whatever happens."""
    latest: list[torch.Tensor | None] = [None] * len(blocks)

    def hook_for(i):
        def hook(module, args, kwargs, output):
            h_in = args[0] if args else kwargs["hidden_states"]
            latest[i] = token_cosine(h_in, output[0] if isinstance(output, tuple) else output)

        return hook

    handles = [b.register_forward_hook(hook_for(i), with_kwargs=True) for i, b in enumerate(blocks)]
    try:
        yield latest
    finally:
        for h in handles:
            h.remove()


def _prompt_texts(prompts) -> list[str]:
    if isinstance(prompts, str):
        raise ValueError(
            f"prompts must be a list of prompts, got the string {prompts!r}; wrap one prompt in a "
            "list, or load a set with lab.world.load_prompts('quick')"
        )
    texts = [getattr(p, "text", p) for p in prompts]
    if not texts:
        raise ValueError("no calibration prompts given; expected at least one, e.g. lab.world.load_prompts('quick')")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"prompt {i} is empty ({t!r}); expected text such as 'a photo of a red circle'")
    return texts


def _check_choice(name: str, value, accepted: Sequence) -> None:
    if value not in accepted:
        raise ValueError(f"unknown {name} {value!r}; expected one of {list(accepted)}")


def _check_steps(timesteps) -> int:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive number of sampling steps, got {timesteps!r}")
    return timesteps


@torch.no_grad()
def trace_blocks(
    pipe,
    prompts: Sequence[str],
    seeds: Sequence[int],
    timesteps: int = DEFAULT_TIMESTEPS,
    guidance_scale: float = DEFAULT_GUIDANCE,
    keep_predictions: bool = False,
    bar=None,
) -> BlockTrace:
    """Samples `prompts` exactly as `SanaPipeline.__call__` does (same embeddings, noise, CFG and
    scheduler steps) while hooks record every block's input/output cosine: one transformer forward
    per timestep for the whole batch. The pipeline is left as it was (its scheduler is copied).

    Args:
        prompts: B prompt texts; seeds: B seeds, prompt i starts from the noise of seeds[i].
        timesteps: sampling steps. guidance_scale: CFG scale (<= 1: no CFG, one branch).
        keep_predictions: also keep the x0 estimate of every step (for the explorer).
        bar: a progress bar (tqdm) advanced by one per timestep, or None.
    """
    prompts, seeds = _prompt_texts(prompts), [int(s) for s in seeds]
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
    steps = _check_steps(timesteps)
    transformer, device = pipe.transformer, pipe._execution_device
    cfg = guidance_scale > 1.0
    embeds, mask, neg, neg_mask = encode_prompts(pipe, prompts, cfg)
    if cfg:  # the pipeline's batch order: [uncond, cond]
        embeds, mask = torch.cat([neg, embeds]), torch.cat([neg_mask, mask])
    scheduler = copy.deepcopy(pipe.scheduler)  # set_timesteps/step mutate it; the pipeline's stays untouched
    scheduler.set_timesteps(steps, device=device)
    side = native_resolution(pipe)
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    channels = transformer.config.in_channels
    latents = pipe.prepare_latents(len(prompts), channels, side, side, torch.float32, device, generators)
    extra = pipe.prepare_extra_step_kwargs(generators, 0.0)
    dtype = transformer.dtype
    sims, predictions = [], []
    with _record_blocks(transformer.transformer_blocks) as latest:
        for i, t in enumerate(scheduler.timesteps):
            x = torch.cat([latents] * 2) if cfg else latents
            timestep = t.expand(x.shape[0]) * transformer.config.timestep_scale
            v = transformer(
                x.to(dtype),
                encoder_hidden_states=embeds.to(dtype),
                encoder_attention_mask=mask,
                timestep=timestep,
                return_dict=False,
            )[0].float()
            if cfg:
                v_uncond, v_cond = v.chunk(2)
                v = v_uncond + guidance_scale * (v_cond - v_uncond)
            if transformer.config.out_channels // 2 == channels:  # learned sigma, as the pipeline handles it
                v = v.chunk(2, dim=1)[0]
            sims.append(torch.stack(latest).view(len(latest), 1 + cfg, len(prompts)).cpu().numpy())
            if keep_predictions:  # flow matching: x_t = (1 - s) x0 + s noise, v = noise - x0
                predictions.append((latents - scheduler.sigmas[i].to(latents.device) * v).cpu())
            latents = scheduler.step(v, t, latents, **extra, return_dict=False)[0]
            if bar is not None:
                bar.update(1)
    return BlockTrace(
        similarity=np.stack(sims),
        timesteps=scheduler.timesteps.float().cpu().numpy(),
        sigmas=scheduler.sigmas[:steps].float().cpu().numpy(),
        branches=("uncond", "cond") if cfg else ("cond",),
        latents=latents,
        predictions=torch.stack(predictions) if keep_predictions else None,
    )


def block_importance(
    pipe,
    prompts: Sequence,
    timesteps: int = DEFAULT_TIMESTEPS,
    guidance_scale: float = DEFAULT_GUIDANCE,
    branches: str = "both",
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH,
    source: str = "",
    progress: bool = True,
) -> ImportanceTable:
    """Importance of every block of `pipe.transformer` at every sampling timestep.

    One transformer forward per (batch of prompts, timestep), whatever the depth; no side effects.

    Args:
        prompts: calibration prompts (texts or `world.Prompt`s); prompt i starts from seed + i.
        timesteps: sampling steps of the scheduler (each one is a column of the table).
        guidance_scale: CFG scale of the sampling runs (<= 1: no CFG).
        branches: "both" averages the unconditional and conditional rows of the CFG batch,
            "cond" only the conditional ones (the same forward passes either way).
        batch_size: prompts per forward pass (the pass holds 2 x batch_size rows with CFG).
        source: a name of the model, stored with the table.
        progress: show a bar over (batch, timestep) forward passes.
    Returns:
        ImportanceTable with values (num_blocks, timesteps).
    """
    texts = _prompt_texts(prompts)
    _check_choice("branches", branches, BRANCHES)
    _check_steps(timesteps)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from tqdm.auto import tqdm

    seeds = candidate_seeds(seed, len(texts))
    total, steps = None, None
    batches = range(0, len(texts), batch_size)
    with tqdm(total=len(batches) * timesteps, desc="importance", unit="step", disable=not progress) as bar:
        for i in batches:
            trace = trace_blocks(
                pipe, texts[i : i + batch_size], seeds[i : i + batch_size], timesteps, guidance_scale, bar=bar
            )
            part = trace.importance(branches).sum(axis=2)  # (steps, blocks), summed over prompts
            total = part if total is None else total + part
            steps = trace.timesteps
    return ImportanceTable(
        (total / len(texts)).T,
        steps,
        num_prompts=len(texts),
        branches=branches,
        guidance_scale=guidance_scale,
        seed=seed,
        source=str(source),
        prompts=texts,
    )


class _BlockSpan(torch.nn.Module):
    """Consecutive transformer blocks run as one, called as the transformer calls a block."""

    def __init__(self, blocks):
        super().__init__()
        self.blocks = torch.nn.ModuleList(blocks)

    def forward(self, hidden_states, *args):
        for block in self.blocks:
            hidden_states = block(hidden_states, *args)
        return hidden_states


def span_importance(pipe, start: int, stop: int, prompts: Sequence, **kwargs) -> ImportanceTable:
    """Importance of blocks start..stop-1 taken together: 1 - cos(h_in of block `start`, h_out of
    block stop-1), measured as `block_importance` (same keyword arguments) on the transformer with
    that span run as one block; the pipeline is left as it was.

    Why: the measure is about quadratic in how much a block changes its input (1 - cos ~ r^2 / 2
    for a small relative change r), so work spread over many blocks gives each a tiny importance;
    the span's own shows what the blocks do together (e.g. the blocks growth added, against the
    source's blocks they replaced).

    Returns the ImportanceTable of the grouped transformer: row `start` is the span, the rows
    before it blocks 0..start-1, the rows after it blocks stop...
    """
    transformer = pipe.transformer
    blocks = transformer.transformer_blocks
    if not 0 <= start < stop <= len(blocks):
        raise ValueError(f"span {start}..{stop} is not within the {len(blocks)} blocks; expected 0 <= start < stop")
    transformer.transformer_blocks = torch.nn.ModuleList(
        [*blocks[:start], _BlockSpan(blocks[start:stop]), *blocks[stop:]]
    )
    try:
        return block_importance(pipe, prompts, **kwargs)
    finally:
        transformer.transformer_blocks = blocks


# --- pruning -------------------------------------------------------------------------------------


def num_blocks(transformer) -> int:
    return len(transformer.transformer_blocks)


def check_method(by: str) -> None:
    _check_choice("pruning method", by, METHODS)


def check_depth(num: int, depth: int) -> None:
    """Raises ValueError unless 1 <= depth < num (a pruned model keeps at least one block)."""
    if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or not 1 <= depth < num:
        raise ValueError(
            f"depth {depth!r} is not a valid pruned depth for a transformer of {num} blocks; "
            f"expected an integer from 1 to {num - 1}"
        )


def select_blocks(
    num: int, depth: int, by: str = "importance", importance: ImportanceTable | None = None, seed: int = 0
) -> list[int]:
    """Indices (ascending) of the `depth` blocks to keep out of `num`.

    by: "importance" keeps the most important (needs `importance` of `num` blocks); "last" drops
    the last blocks; "uniform" keeps evenly spaced blocks, first and last included; "random" keeps
    a random subset drawn with `seed`.
    """
    check_method(by)
    check_depth(num, depth)
    if by == "importance":
        if importance is None:
            raise ValueError(
                "by='importance' needs importance=ImportanceTable (from block_importance or ImportanceTable.load)"
            )
        if importance.num_blocks != num:
            raise ValueError(
                f"the importance table has {importance.num_blocks} blocks but the transformer has "
                f"{num}; it was measured on another model"
            )
        keep = importance.ranking()[:depth]
    elif by == "last":
        keep = range(depth)
    elif by == "uniform":  # spacing >= 1 when depth < num, so rounding never repeats a block
        keep = np.linspace(0, num - 1, depth).round().astype(int)
    else:
        keep = np.random.default_rng(seed).choice(num, size=depth, replace=False)
    return sorted(int(i) for i in keep)


def _check_keep(keep, num: int) -> list[int]:
    keep = [int(i) for i in keep]
    bad = [i for i in keep if not 0 <= i < num]
    if not keep or bad or len(set(keep)) != len(keep):
        raise ValueError(f"keep={keep} must be distinct block indices in [0, {num - 1}], at least one")
    return sorted(keep)


def _keep_in_place(transformer, keep: list[int]) -> None:
    transformer.transformer_blocks = torch.nn.ModuleList([transformer.transformer_blocks[i] for i in keep])
    transformer.register_to_config(num_layers=len(keep))  # config travels with the weights


def prune_blocks(transformer, keep: Sequence[int]):
    """A new transformer holding only the blocks `keep` (in their original order), with
    `config.num_layers` updated. The source is not modified; only kept blocks are copied."""
    blocks = transformer.transformer_blocks
    keep = _check_keep(keep, len(blocks))
    # deepcopy's memo maps each dropped block to None, so the copy never duplicates their weights
    memo = {id(b): None for i, b in enumerate(blocks) if i not in set(keep)}
    pruned = copy.deepcopy(transformer, memo)
    _keep_in_place(pruned, keep)
    return pruned


def prune_depth(
    transformer, depth: int, by: str = "importance", importance: ImportanceTable | None = None, seed: int = 0
):
    """A new transformer of `depth` blocks chosen by `by` (see `select_blocks`)."""
    return prune_blocks(transformer, select_blocks(num_blocks(transformer), depth, by, importance, seed))


PRUNING_RECORD = "pruning.json"  # written into a pruned pipeline directory: which blocks it kept


def pruned_pipeline(pipe, keep: Sequence[int]):
    """A SanaPipeline sharing `pipe`'s text encoder, VAE, tokenizer and scheduler, with a pruned
    copy of its transformer."""
    from diffusers import SanaPipeline

    return SanaPipeline(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        vae=pipe.vae,
        transformer=prune_blocks(pipe.transformer, keep),
        scheduler=pipe.scheduler,
    )


def save_pruned(pipe, keep: Sequence[int], out: str | Path, record: dict | None = None) -> Path:
    """Prunes `pipe` to the blocks `keep` and saves a complete SanaPipeline to `out` atomically, with
    `pruning.json` saying which blocks of how many were kept (plus `record`)."""
    from lab.checkpoint import atomic_directory
    from lab.provenance import portable

    keep = _check_keep(keep, num_blocks(pipe.transformer))
    small = pruned_pipeline(pipe, keep)
    info = {"source_num_layers": num_blocks(pipe.transformer), "kept_blocks": keep, **(record or {})}
    with atomic_directory(out) as tmp:
        small.save_pretrained(tmp)
        (tmp / PRUNING_RECORD).write_text(json.dumps(portable(info), indent=2) + "\n")
    return Path(out)


def prune_pipeline_dir(
    source,
    out: str | Path,
    depth: int,
    by: str = "importance",
    importance: ImportanceTable | None = None,
    seed: int = 0,
    record: dict | None = None,
) -> Path:
    """Prunes the SanaPipeline `source` (a directory, or a pipeline already loaded) to `depth`
    blocks chosen by `by` (see `select_blocks`) and saves the complete pruned pipeline to `out`
    atomically, with `pruning.json` recording the kept blocks, `by`, `seed`, the source (a loaded
    pipeline: give its name in `record["source"]`) and the rest of `record`. Returns `out`."""
    from lab.model import load_pipeline

    pipe = load_pipeline(source) if isinstance(source, str | Path) else source
    keep = select_blocks(num_blocks(pipe.transformer), depth, by, importance, seed)
    named = {"source": str(source)} if isinstance(source, str | Path) else {}
    return save_pruned(pipe, keep, out, {**named, "by": by, "seed": seed, **(record or {})})


def load_pruned(
    pipeline_dir: str | Path,
    depth: int,
    ranking: str | Path | ImportanceTable | None = None,
    by: str = "importance",
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """Loads a SanaPipeline and prunes its transformer to `depth` blocks on load: the way to ship
    every pruned depth as one full checkpoint plus one importance table (`ranking`, a JSON path)."""
    from lab.model import load_pipeline

    table = ImportanceTable.load(ranking) if isinstance(ranking, str | Path) else ranking
    pipe = load_pipeline(pipeline_dir, device=device, dtype=dtype)
    keep = select_blocks(num_blocks(pipe.transformer), depth, by, table, seed)
    _keep_in_place(pipe.transformer, keep)  # nobody else holds this freshly loaded model
    return pipe
