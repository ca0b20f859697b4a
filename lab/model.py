"""The lab's models: real diffusers/transformers components, sized by one table.

    pipe = build_pipeline("S")                 # untrained SanaPipeline of size S
    pipe = load_pipeline("checkpoints/S")      # any SanaPipeline directory, real SANA 1.5 included

A lab model is a `diffusers.SanaPipeline`: a SANA 1.5 transformer (`qk_norm="rms_norm_across_heads"`),
a tiny DC-AE (`AutoencoderDC`, 64x64x3 -> 8x8xC), a word-level tokenizer and a tiny Gemma-2 text
encoder, and a flow-matching DPM-Solver scheduler. Saved with `save_pretrained`, it loads with
`SanaPipeline.from_pretrained` in a process that never imports `lab`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from lab import world


@dataclass(frozen=True)
class TransformerSize:
    """Shape of a `SanaTransformer2DModel`. Width = heads x head_dim."""

    num_layers: int
    num_attention_heads: int
    attention_head_dim: int
    num_cross_attention_heads: int
    cross_attention_head_dim: int
    caption_channels: int  # text encoder hidden size
    in_channels: int  # latent channels
    sample_size: int  # latent side, in latent pixels
    patch_size: int = 1
    mlp_ratio: float = 2.5

    @property
    def width(self) -> int:
        return self.num_attention_heads * self.attention_head_dim


LATENT_CHANNELS = 8  # the lab DC-AE's latent channels
LATENT_SIZE = 8  # 64x64 images -> 8x8 latents (f8)
TEXT_HIDDEN = 64  # the lab text encoder's hidden size

# One table for every size. S is the "1.6B" analogue, L has 3x its blocks (the "4.8B" analogue,
# grown from S). `sana-*` are the real SANA 1.5 shapes (build them on the meta device). `tiny-4` and
# `tiny-6` are `tiny` with more blocks: the untrained stand-ins of quick runs for a trained S or L
# (4: partial preservation's "all but the last two" still keeps two; 6: several pruned depths).
SIZES: dict[str, TransformerSize] = {
    "tiny": TransformerSize(2, 2, 8, 2, 8, 16, LATENT_CHANNELS, LATENT_SIZE),
    "tiny-4": TransformerSize(4, 2, 8, 2, 8, 16, LATENT_CHANNELS, LATENT_SIZE),
    "tiny-6": TransformerSize(6, 2, 8, 2, 8, 16, LATENT_CHANNELS, LATENT_SIZE),
    "S": TransformerSize(8, 4, 32, 4, 32, TEXT_HIDDEN, LATENT_CHANNELS, LATENT_SIZE),
    "L": TransformerSize(24, 4, 32, 4, 32, TEXT_HIDDEN, LATENT_CHANNELS, LATENT_SIZE),
    "sana-1.6b": TransformerSize(20, 70, 32, 20, 112, 2304, 32, 32),
    "sana-4.8b": TransformerSize(60, 70, 32, 20, 112, 2304, 32, 32),
}


def _size(size: str | TransformerSize) -> TransformerSize:
    if isinstance(size, TransformerSize):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; expected one of {list(SIZES)}")
    return SIZES[size]


# SANA has no position embedding ("NoPE": the Mix-FFN's depth-wise convolution carries position).
# "sincos" adds diffusers' fixed 2-D sin-cos embedding to the patch embedding: a departure from SANA,
# tried for GenEval's position task (issue 17, reports/position/).
POSITION_EMBEDDINGS = ("none", "sincos")


def build_transformer(
    size: str | TransformerSize, device: str | torch.device = "cpu", position_embedding: str = "none"
):
    """A freshly initialised SANA 1.5 transformer. `device="meta"` allocates nothing (for real sizes).
    `position_embedding`: one of POSITION_EMBEDDINGS (SANA's is "none")."""
    from diffusers import SanaTransformer2DModel

    if position_embedding not in POSITION_EMBEDDINGS:
        raise ValueError(f"unknown position_embedding {position_embedding!r}; expected one of {POSITION_EMBEDDINGS}")
    s = _size(size)
    with torch.device(device):
        return SanaTransformer2DModel(
            in_channels=s.in_channels,
            out_channels=s.in_channels,
            num_attention_heads=s.num_attention_heads,
            attention_head_dim=s.attention_head_dim,
            num_layers=s.num_layers,
            num_cross_attention_heads=s.num_cross_attention_heads,
            cross_attention_head_dim=s.cross_attention_head_dim,
            cross_attention_dim=s.width,
            caption_channels=s.caption_channels,
            mlp_ratio=s.mlp_ratio,
            sample_size=s.sample_size,
            patch_size=s.patch_size,
            qk_norm="rms_norm_across_heads",  # SANA 1.5: RMSNorm on q and k across heads
            # diffusers adds the sin-cos table exactly when interpolation_scale is set
            interpolation_scale=1 if position_embedding == "sincos" else None,
        )


@dataclass(frozen=True)
class VAESize:
    """A tiny DC-AE: 4 stages = 3 downsamplings, 64x64 -> 8x8."""

    block_out_channels: tuple[int, ...] = (32, 64, 128, 128)
    encoder_layers_per_block: tuple[int, ...] = (1, 1, 1, 1)
    decoder_layers_per_block: tuple[int, ...] = (1, 1, 2, 2)
    latent_channels: int = LATENT_CHANNELS


# The lab's DC-AE (checkpoints/vae) and a smaller one for tests and the stand-ins of quick runs.
VAE_SIZES: dict[str, VAESize] = {
    "lab": VAESize(),
    "tiny": VAESize(block_out_channels=(8, 8, 16, 16), decoder_layers_per_block=(1, 1, 1, 1)),
}


def build_vae(size: str | VAESize = "lab", scaling_factor: float = 1.0):
    """An untrained tiny `AutoencoderDC` (ResBlocks only: attention buys nothing at 8x8).

    Args:
        size: a `VAE_SIZES` key or a `VAESize`.
    """
    from diffusers import AutoencoderDC

    if not isinstance(size, VAESize):
        if size not in VAE_SIZES:
            raise ValueError(f"unknown VAE size {size!r}; expected one of {list(VAE_SIZES)} or a VAESize")
        size = VAE_SIZES[size]
    n = len(size.block_out_channels)
    return AutoencoderDC(
        in_channels=3,
        latent_channels=size.latent_channels,
        encoder_block_types="ResBlock",
        decoder_block_types="ResBlock",
        encoder_block_out_channels=size.block_out_channels,
        decoder_block_out_channels=size.block_out_channels,
        encoder_layers_per_block=size.encoder_layers_per_block,
        decoder_layers_per_block=size.decoder_layers_per_block,
        encoder_qkv_multiscales=((),) * n,
        decoder_qkv_multiscales=((),) * n,
        scaling_factor=scaling_factor,
    )


SPECIAL_TOKENS = {"pad": "[PAD]", "eos": "[EOS]", "bos": "[BOS]", "unk": "[UNK]"}
TEXT_MAX_LENGTH = 16  # longest world prompt is 11 words + BOS


def build_tokenizer(words: list[str] | None = None, max_length: int = TEXT_MAX_LENGTH):
    """A word-level `PreTrainedTokenizerFast` over the world's vocabulary; prepends BOS (so the empty
    prompt used for CFG has one token), lower-cases, maps unknown words to [UNK]."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = world.vocabulary() if words is None else words
    specials = list(SPECIAL_TOKENS.values())
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SPECIAL_TOKENS['bos']} $A", special_tokens=[(SPECIAL_TOKENS["bos"], vocab[SPECIAL_TOKENS["bos"]])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
        pad_token=SPECIAL_TOKENS["pad"],
        model_max_length=max_length,
        padding_side="right",
    )


@dataclass(frozen=True)
class TextEncoderSize:
    hidden_size: int = TEXT_HIDDEN
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    head_dim: int = 32
    intermediate_size: int = 256

    @staticmethod
    def for_hidden(hidden_size: int) -> TextEncoderSize:
        """The lab's encoder shape for a given hidden size (2 heads, 4x MLP)."""
        d = TextEncoderSize()
        return TextEncoderSize(
            hidden_size,
            d.num_hidden_layers,
            d.num_attention_heads,
            hidden_size // d.num_attention_heads,
            4 * hidden_size,
        )


def build_text_encoder(tokenizer, size: TextEncoderSize = TextEncoderSize()):
    """A tiny Gemma-2 encoder (SANA's text encoder family) from a config; `[0]` of its output is
    the (B, L, hidden) last hidden state the pipeline reads."""
    from transformers import Gemma2Config, Gemma2Model

    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_attention_heads,
        head_dim=size.head_dim,
        query_pre_attn_scalar=size.head_dim,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return Gemma2Model(config)


FLOW_SHIFT = 1.0  # 64x64 images need no resolution shift (SANA uses 3.0 at 1024px)


def build_scheduler(flow_shift: float = FLOW_SHIFT, kind: str = "dpm"):
    """Flow-matching DPM-Solver++ (order 2, SANA's default) or Euler."""
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

    if kind == "dpm":
        return DPMSolverMultistepScheduler(
            use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=flow_shift, solver_order=2
        )
    if kind == "euler":
        return FlowMatchEulerDiscreteScheduler(shift=flow_shift)
    raise ValueError(f"unknown scheduler {kind!r}; expected 'dpm' or 'euler'")


def build_pipeline(
    size: str | TransformerSize = "S",
    vae=None,
    tokenizer=None,
    text_encoder=None,
    scheduler=None,
    position_embedding: str = "none",
):
    """Assembles a `SanaPipeline`; components not given are built fresh (untrained)."""
    from diffusers import SanaPipeline

    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    transformer = build_transformer(size, position_embedding=position_embedding)
    if text_encoder is None:
        text_encoder = build_text_encoder(tokenizer, TextEncoderSize.for_hidden(transformer.config.caption_channels))
    if transformer.config.caption_channels != text_encoder.config.hidden_size:
        raise ValueError(
            f"transformer caption_channels {transformer.config.caption_channels} != text encoder hidden size "
            f"{text_encoder.config.hidden_size}"
        )
    return SanaPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae if vae is not None else build_vae(),
        transformer=transformer,
        scheduler=scheduler if scheduler is not None else build_scheduler(),
    )


def encode_text(tokenizer, text_encoder, prompts: list[str], max_length: int | None = None):
    """Prompt embeddings exactly as `SanaPipeline` computes them (lower-case, strip, pad to max length).

    Returns (embeds (B, L, hidden), mask (B, L) int64 of 1/0).
    """
    max_length = max_length or text_max_length(tokenizer)
    device = next(text_encoder.parameters()).device
    ids = tokenizer(
        [p.lower().strip() for p in prompts],
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    mask = ids.attention_mask.to(device)
    return text_encoder(ids.input_ids.to(device), attention_mask=mask)[0], mask


SANA_MAX_SEQUENCE_LENGTH = 300  # SanaPipeline's default


def text_max_length(tokenizer) -> int:
    """Tokens to pad prompts to: the tokenizer's own limit when it is small (lab models), else SANA's 300."""
    return min(SANA_MAX_SEQUENCE_LENGTH, tokenizer.model_max_length)


def unknown_prompt_words(tokenizer, prompt: str) -> list[str]:
    """Words of `prompt` that the tokenizer maps to its unknown token (empty for real tokenizers
    with byte fallback). Lets callers warn instead of silently generating from [UNK]."""
    if tokenizer.unk_token_id is None:
        return []
    return [w for w in prompt.lower().split() if tokenizer.convert_tokens_to_ids(w) == tokenizer.unk_token_id]


def quiet_hub_logging() -> None:
    """Silences diffusers/transformers' per-file progress bars and info logs (lab shows its own)."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


PIPELINE_CLASSES = ("SanaPipeline",)


def check_pipeline_dir(path: str | Path) -> Path:
    """`path` when it is a SanaPipeline directory (a `model_index.json` naming one), without loading
    any weights. Raises ValueError saying what is missing."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist; expected a SanaPipeline directory (saved with save_pretrained)")
    index = path / "model_index.json"
    if not index.is_file():
        raise ValueError(
            f"{path} is not a pipeline directory: no model_index.json (expected a SanaPipeline saved with save_pretrained)"
        )
    try:
        cls = json.loads(index.read_text()).get("_class_name")
    except json.JSONDecodeError as e:
        raise ValueError(f"{index} is not valid JSON: {e}") from e
    if cls not in PIPELINE_CLASSES:
        raise ValueError(f"{path} holds a {cls}, expected one of {PIPELINE_CLASSES}")
    return path


def load_pipeline(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Loads any SanaPipeline directory (a lab checkpoint or a downloaded SANA 1.5 one).

    Raises ValueError when `path` is not a SanaPipeline directory or its weights are unreadable.
    """
    from diffusers import SanaPipeline

    path = check_pipeline_dir(path)
    quiet_hub_logging()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = SanaPipeline.from_pretrained(path, torch_dtype=dtype)
    except Exception as e:  # safetensors/json/shape errors all mean the same thing to a user
        raise ValueError(
            f"could not load the pipeline in {path} (damaged or incomplete weights?): "
            f"{type(e).__name__}: {_first_line(e)}"
        ) from e
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


PIPELINE_MODELS = ("transformer", "text_encoder", "vae")  # a SanaPipeline's components with weights
FP16_MAX = 65504.0  # the largest finite float16


def round_weights_to_fp16(pipe) -> None:
    """Rounds the floating-point weights of the pipeline's models to fp16 precision, in place, keeping
    their dtype: `pipe` then computes exactly what it will after `save_fp16` and a load in fp32.

    Raises ValueError naming the first tensor with a value beyond fp16's range (it would become inf).
    """
    weights = {
        f"{name}.{key}": tensor
        for name in PIPELINE_MODELS
        for key, tensor in getattr(pipe, name).state_dict().items()
        if tensor.is_floating_point()
    }
    for key, tensor in weights.items():  # all checked before any is changed
        if tensor.abs().max() > FP16_MAX:
            raise ValueError(f"{key} holds values beyond fp16's range (+-{FP16_MAX:g}); save it in fp32")
    with torch.no_grad():
        for tensor in weights.values():
            tensor.copy_(tensor.half())


def save_fp16(pipe, out: str | Path) -> None:
    """Writes the pipeline's models with fp16 weights (half the bytes) into the pipeline directory
    `out`, replacing their weight files; `load_pipeline` reads them back in fp32. Round first
    (`round_weights_to_fp16`) to know what the stored model computes."""
    for name in PIPELINE_MODELS:
        model = getattr(pipe, name)
        dtype = model.dtype
        model.to(torch.float16).save_pretrained(Path(out) / name)
        model.to(dtype)


def _first_line(e: BaseException) -> str:
    """The first line of an exception's message (library errors can run to many lines)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else ""
