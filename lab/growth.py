"""Depth growth: a deep SANA transformer initialised from a shallow trained one (SANA 1.5 §2.2).

    deep = grow_depth(pipe.transformer, 60, "partial_preservation")   # 1.6B -> 4.8B: keep 18, add 42
    deep = grow_depth(pipe.transformer, 24, "cyclic", zero_init_copies=True)
    pipe_L = grow_pipeline(pipe_S, 24)                                 # same text encoder, VAE, scheduler
    added_blocks("runs/L_init")                                        # [6, ..., 23]: what growth added

SANA 1.5 trains its 60-block 4.8B model from the 20-block 1.6B instead of from scratch. The
paper compares three ways to lay out the deep model's blocks (`growth_plan`):

- `partial_preservation` (the paper's choice): keep the first `keep` source blocks — by default
  all but the last two, which the paper drops so the new blocks learn the output mapping — and
  append new blocks that start as identity mappings;
- `cyclic`: repeat the (kept) source blocks in order, 1..n, 1..n, ...;
- `block_replication`: repeat each source block in place, 1, 1, 1, 2, 2, 2, ...

A new block is an identity map because the three branches that write into the residual stream
end in zero: the self-attention and cross-attention output projections and the FFN's last 1x1
conv (weights and biases). Its other weights are small random values and its q/k norm weights 1,
as in the reference code, so the very first backward pass sends gradient into the zeroed
projections. Copies made by `cyclic` and `block_replication` can be zero-gated the same way
(`zero_init_copies`): they keep their trained weights but start as identity too.

Everything else of the source (patch and caption embeddings, the timestep MLP, the output layer)
is copied unchanged, and the grown model's `config.num_layers` equals its number of blocks, so it
saves and loads like any `SanaTransformer2DModel`. Works on the meta device (real SANA sizes).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

STRATEGIES = ("partial_preservation", "cyclic", "block_replication")
DROPPED_BLOCKS = 2  # partial preservation drops the source's last two blocks by default (paper: 20 -> keep 18)
INIT_STD = 0.02  # std of the small random weights of a new block (the reference code's trunc-normal scale)
DEFAULT_INIT = "default"  # init_std value: each layer of a new block at PyTorch's default scale instead
GROWTH_FILE = "growth.json"  # written beside a grown pipeline: how it was grown


def default_keep(source_layers: int, strategy: str) -> int:
    """How many source blocks a strategy keeps when `keep` is not given: all but the last
    `DROPPED_BLOCKS` for partial preservation (at least one), all of them for replication."""
    if strategy == "partial_preservation":
        return max(1, source_layers - DROPPED_BLOCKS)
    return source_layers


def growth_plan(
    source_layers: int, num_layers: int, strategy: str = "partial_preservation", keep: int | None = None
) -> list[int | None]:
    """Where each block of the grown model comes from.

    Args:
        source_layers: blocks of the source model (n).
        num_layers: blocks of the grown model; must exceed n.
        strategy: one of `STRATEGIES`.
        keep: the first `keep` source blocks are used, 1 <= keep <= n (default: `default_keep`).
    Returns:
        `num_layers` entries: the source block index a grown block starts from, or None for a
        new identity block. An index seen earlier in the list marks a copy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown growth strategy {strategy!r}; expected one of {STRATEGIES}")
    if not isinstance(num_layers, int) or num_layers <= source_layers:
        raise ValueError(
            f"target depth num_layers={num_layers!r} must be an integer larger than the source's {source_layers} blocks"
        )
    keep = default_keep(source_layers, strategy) if keep is None else keep
    if not isinstance(keep, int) or not 1 <= keep <= source_layers:
        raise ValueError(
            f"keep={keep!r} is out of range; expected an integer from 1 to {source_layers} (the source's blocks)"
        )
    if strategy == "partial_preservation":
        return list(range(keep)) + [None] * (num_layers - keep)
    if strategy == "cyclic":
        return [i % keep for i in range(num_layers)]
    # block_replication: each block r times in place; the first (num_layers mod keep) blocks once more
    repeats = [num_layers // keep + (i < num_layers % keep) for i in range(keep)]
    return [i for i in range(keep) for _ in range(repeats[i])]


def zero_output_projections(block: nn.Module) -> nn.Module:
    """Zeroes the layers that write a SANA block's branches into the residual stream (self- and
    cross-attention `to_out[0]`, the FFN's `conv_point`, weights and biases), so the block
    computes the identity. Returns `block`, changed in place."""
    outputs = [block.attn1.to_out[0], block.ff.conv_point]
    if getattr(block, "attn2", None) is not None:  # models without cross-attention have none
        outputs.append(block.attn2.to_out[0])
    with torch.no_grad():
        for layer in outputs:
            layer.weight.zero_()
            if layer.bias is not None:
                layer.bias.zero_()
    return block


def identity_block(
    template: nn.Module, init_std: float | str = INIT_STD, generator: torch.Generator | None = None
) -> nn.Module:
    """A new block shaped like `template` that starts as the identity (see the module docstring).

    Linear and conv weights ~ N(0, init_std^2), or with `init_std=DEFAULT_INIT` at each layer's PyTorch
    default scale, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as a freshly built block has them; biases 0;
    norm weights (q/k RMSNorm) 1; the modulation table `scale_shift_table` (6, dim) ~ N(0, 1/dim) as
    diffusers initialises it; then the output projections are zeroed.
    """
    block = copy.deepcopy(template)
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                if init_std == DEFAULT_INIT:
                    bound = module.weight[0].numel() ** -0.5  # fan_in: in_features, or in/groups x kernel area
                    nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                else:
                    nn.init.normal_(module.weight, std=init_std, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(getattr(module, "weight", None), nn.Parameter):
                module.weight.fill_(1.0)  # norms: RMSNorm on q and k (and any affine LayerNorm)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
        table = block.scale_shift_table
        nn.init.normal_(table, std=table.shape[-1] ** -0.5, generator=generator)
    return zero_output_projections(block)


def grow_depth(
    transformer,
    num_layers: int,
    strategy: str = "partial_preservation",
    keep: int | None = None,
    zero_init_copies: bool = False,
    init_std: float | str = INIT_STD,
    seed: int = 0,
):
    """A new, deeper `SanaTransformer2DModel` initialised from `transformer` (left unchanged).

    Args:
        transformer: any `diffusers.SanaTransformer2DModel` (lab sizes, real SANA, meta device).
        num_layers: blocks of the grown model; must exceed the source's `config.num_layers`.
        strategy: `partial_preservation`, `cyclic` or `block_replication` (see `growth_plan`).
        keep: source blocks used (the first `keep`); default all but the last two for partial
            preservation, all for the replication strategies.
        zero_init_copies: replication strategies: make every copy after a block's first
            occurrence start as identity (zeroed output projections, trained weights elsewhere).
        init_std: std of the small random weights of new blocks, or DEFAULT_INIT: each layer at PyTorch's
            default scale (see `identity_block`), larger inside the FFN's depthwise conv (fan_in 9).
        seed: seed of the new blocks' random weights.
    Returns:
        the grown model, on the source's device and dtype, `config.num_layers == num_layers`.
    """
    from diffusers import SanaTransformer2DModel

    if not isinstance(transformer, SanaTransformer2DModel):
        hint = " (pass pipe.transformer)" if hasattr(transformer, "transformer") else ""
        raise TypeError(f"grow_depth needs a diffusers SanaTransformer2DModel, got {type(transformer).__name__}{hint}")
    source_layers = transformer.config.num_layers
    if len(transformer.transformer_blocks) != source_layers:
        raise ValueError(
            f"the source's config says {source_layers} blocks but it has "
            f"{len(transformer.transformer_blocks)}; call register_to_config(num_layers=...) after surgery"
        )
    plan = growth_plan(source_layers, num_layers, strategy, keep)
    if init_std != DEFAULT_INIT and not (isinstance(init_std, (int, float)) and 0 < init_std < float("inf")):
        raise ValueError(f"init_std={init_std!r} is invalid; expected a number > 0 or {DEFAULT_INIT!r}")

    grown = copy.deepcopy(transformer)  # embeddings, timestep MLP, output layer: copied unchanged
    source_blocks = list(grown.transformer_blocks)
    device = next(transformer.parameters()).device
    generator = None if device.type == "meta" else torch.Generator(device).manual_seed(seed)
    blocks, used = [], set()
    for index in plan:
        if index is None:
            blocks.append(identity_block(source_blocks[0], init_std, generator))
        elif index in used:  # a copy of a block placed earlier
            block = copy.deepcopy(source_blocks[index])
            blocks.append(zero_output_projections(block) if zero_init_copies else block)
        else:
            used.add(index)
            blocks.append(source_blocks[index])
    grown.transformer_blocks = nn.ModuleList(blocks)
    grown.register_to_config(num_layers=num_layers)  # config travels with the weights
    return grown


def grow_pipeline(pipe, num_layers: int, strategy: str = "partial_preservation", keep: int | None = None, **kwargs):
    """A new `SanaPipeline` whose transformer is `grow_depth(pipe.transformer, ...)`; the tokenizer,
    text encoder, VAE and scheduler are the source's (shared objects, not copies)."""
    from diffusers import SanaPipeline

    grown = grow_depth(pipe.transformer, num_layers, strategy, keep, **kwargs)
    return SanaPipeline(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        vae=pipe.vae,
        transformer=grown,
        scheduler=pipe.scheduler,
    )


def growth_record(
    source: str | Path,
    source_layers: int,
    num_layers: int,
    strategy: str,
    keep: int | None = None,
    zero_init_copies: bool = False,
    seed: int = 0,
    init_std: float | str = INIT_STD,
) -> dict:
    """What `GROWTH_FILE` holds: the source, the arguments, and the block plan."""
    from lab.provenance import git_commit

    keep = default_keep(source_layers, strategy) if keep is None else keep
    return {
        "source": str(source),
        "source_layers": source_layers,
        "num_layers": num_layers,
        "strategy": strategy,
        "keep": keep,
        "zero_init_copies": zero_init_copies,
        "seed": seed,
        "init_std": init_std,
        "plan": growth_plan(source_layers, num_layers, strategy, keep),
        "commit": git_commit(),
    }


def added_blocks(pipeline_dir: str | Path) -> list[int]:
    """Indices of the blocks that growth added to the grown pipeline in `pipeline_dir`, read from
    its `GROWTH_FILE`: the new identity blocks and the copies of a block placed earlier, ascending.
    The rest are the kept source blocks, each at its first place in the plan.

    Raises ValueError when the directory has no `GROWTH_FILE` or its plan cannot be read.
    """
    record_path = Path(pipeline_dir) / GROWTH_FILE
    if not record_path.is_file():
        raise ValueError(
            f"{pipeline_dir} has no {GROWTH_FILE}: it is not a grown pipeline; expected one written by "
            "`lab grow` (lab.growth.grow_pipeline_dir)"
        )
    plan = json.loads(record_path.read_text()).get("plan")
    if not isinstance(plan, list) or not all(i is None or (isinstance(i, int) and i >= 0) for i in plan):
        raise ValueError(
            f"{record_path} holds no block plan ('plan': a list of source block indices or null); got {plan!r}"
        )
    seen: set[int] = set()
    added = []
    for position, index in enumerate(plan):
        if index is None or index in seen:
            added.append(position)
        else:
            seen.add(index)
    return added


def grow_pipeline_dir(
    source: str | Path,
    out: str | Path,
    num_layers: int,
    strategy: str = "partial_preservation",
    keep: int | None = None,
    zero_init_copies: bool = False,
    seed: int = 0,
    init_std: float | str = INIT_STD,
) -> Path:
    """Loads the SanaPipeline in `source`, grows its transformer, and saves the complete grown
    pipeline to `out` atomically, with `growth.json` recording how. Returns `out`."""
    from lab.checkpoint import atomic_directory
    from lab.model import load_pipeline
    from lab.provenance import portable

    pipe = load_pipeline(source)
    grown = grow_pipeline(
        pipe, num_layers, strategy, keep, zero_init_copies=zero_init_copies, init_std=init_std, seed=seed
    )
    record = growth_record(
        source, pipe.transformer.config.num_layers, num_layers, strategy, keep, zero_init_copies, seed, init_std
    )
    out = Path(out)
    with atomic_directory(out) as tmp:
        grown.save_pretrained(tmp)
        (tmp / GROWTH_FILE).write_text(json.dumps(portable(record), indent=2) + "\n")
    return out
