"""The lab's pretrained text encoder: a tiny Gemma-2 that has learnt, from captions alone, what the
world's captions say.

    lab pretrain-text-encoder --config configs/text_encoder.yaml --out checkpoints/text_encoder
    # then, in a TrainConfig: text_encoder: checkpoints/text_encoder   (frozen, as SANA's Gemma-2)

SANA conditions on a frozen, pretrained LLM. The lab has none, and neither stand-in reads the
captions' structure: trained jointly with the denoiser, the encoder merges "left of" and "right of"
(cosine 0.994); frozen at its random initialisation it keeps them apart (0.67) but no S trained on
it came to follow the relation or the colour-to-shape binding (reports/position/). Here the encoder
learns, with small linear heads discarded afterwards, to state:

- at every shape word, that object: its shape, colour (or none named), count, and where it is
  relative to the object named before it (the encoder is causal: the second object's word is the
  first that can know "a circle left of a square" puts the square on the right);
- at the last token, the whole caption: every shape's count and colour, and which relations hold
  between which shapes.

Captions are the diffusion models' training prompts only (no held-out colour-shape pair), with and
without "a photo of". What it learns is then linearly readable from the tokens the denoiser attends to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lab import world
from lab.schedule import lr_at

COLORS = tuple(world.COLORS)
HEADS = {  # name: classes (per shape word, "object_*"; per caption, "scene_*", one group per shape)
    "object_shape": len(world.SHAPES),
    "object_color": len(COLORS) + 1,  # + none named
    "object_count": max(world.NUMBERS),  # 1..4
    "object_relation": len(world.RELATIONS) + 1,  # to the object named before it; + none
    "scene_count": max(world.NUMBERS) + 1,  # 0..4, per shape
    "scene_color": len(COLORS) + 1,  # per shape; + none named (or absent)
}


@dataclass(frozen=True)
class TextEncoderConfig:
    """One pretraining run of the lab's text encoder (`lab.model.build_text_encoder`'s shape)."""

    hidden_size: int = 64  # must equal the transformers' caption_channels (lab.model.TEXT_HIDDEN)
    steps: int = 1500
    batch_size: int = 256
    lr: float = 2e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.0  # cosine decay to lr x this
    weight_decay: float = 0.01
    bare_fraction: float = 0.5  # captions without "a photo of", as people type them in the app
    eval_captions: int = 2048
    seed: int = 0


def mentions(prompt: world.Prompt) -> list[world.Requirement]:
    """The prompt's objects in the order its text names them (GenEval stores a position prompt's
    second object first)."""
    return list(prompt.include[::-1]) if prompt.task == "position" else list(prompt.include)


def caption_targets(prompt: world.Prompt, text: str) -> tuple[list[int], dict[str, list[int]], dict[str, np.ndarray]]:
    """What the encoder should state about `text` (`prompt`'s text, with or without "a photo of").

    Returns (token index of each shape word, {object head: class per shape word}, {scene head:
    (len(SHAPES),) classes, "scene_relations": (len(world.SHAPE_PAIRS) x len(RELATIONS),) 0/1}).
    Token indices count the BOS token the lab's tokenizer prepends."""
    words = text.lower().split()
    nouns = set(world.SHAPES) | set(world.PLURALS.values())
    positions = [1 + i for i, w in enumerate(words) if w in nouns]
    objs = mentions(prompt)
    if len(positions) != len(objs):
        raise ValueError(f"{text!r} names {len(positions)} shapes but its prompt has {len(objs)} objects")
    per_object = {k: [] for k in HEADS if k.startswith("object_")}
    count = np.zeros(len(world.SHAPES), np.int64)
    color = np.zeros(len(world.SHAPES), np.int64)
    previous = None
    for r in objs:
        per_object["object_shape"].append(world.SHAPES.index(r.cls))
        per_object["object_color"].append(COLORS.index(r.color) + 1 if r.color else 0)
        per_object["object_count"].append(r.count - 1)
        relation = 0
        if previous is not None and previous.position is not None:  # "A rel B": B is the opposite of rel of A
            relation = 1 + world.RELATIONS.index(world.OPPOSITE_RELATION[previous.position[0]])
        per_object["object_relation"].append(relation)
        count[world.SHAPES.index(r.cls)] = r.count
        color[world.SHAPES.index(r.cls)] = per_object["object_color"][-1]
        previous = r
    relations = np.zeros((len(world.SHAPE_PAIRS), len(world.RELATIONS)), np.float32)
    if prompt.task == "position":
        a, b = objs  # "a A rel a B"
        rel = a.position[0]
        relations[world.SHAPE_PAIRS.index((a.cls, b.cls)), world.RELATIONS.index(rel)] = 1
        relations[world.SHAPE_PAIRS.index((b.cls, a.cls)), world.RELATIONS.index(world.OPPOSITE_RELATION[rel])] = 1
    return positions, per_object, {"scene_count": count, "scene_color": color, "scene_relations": relations.ravel()}


def sample_captions(n: int, rng: np.random.Generator, bare_fraction: float = 0.5) -> list[tuple[world.Prompt, str]]:
    """`n` training prompts of the diffusion models, each with the text it is written as."""
    out = []
    for _ in range(n):
        p = world.sample_training_prompt(rng)
        bare = rng.random() < bare_fraction and p.text.startswith(world.PHOTO_PREFIX + " ")
        out.append((p, p.text[len(world.PHOTO_PREFIX) + 1 :] if bare else p.text))
    return out


class Heads(torch.nn.Module):
    """The linear read-outs of pretraining (discarded afterwards)."""

    def __init__(self, hidden: int):
        super().__init__()
        shapes = len(world.SHAPES)
        self.object = torch.nn.ModuleDict({k: torch.nn.Linear(hidden, c) for k, c in HEADS.items() if "object" in k})
        self.scene = torch.nn.ModuleDict(
            {k: torch.nn.Linear(hidden, shapes * c) for k, c in HEADS.items() if "scene" in k}
        )
        self.relations = torch.nn.Linear(hidden, len(world.SHAPE_PAIRS) * len(world.RELATIONS))


def _losses_and_hits(encoder, tokenizer, heads: Heads, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summed loss over the heads, and per head a (k,) bool tensor of correct answers."""
    from lab.model import encode_text

    texts = [t for _, t in batch]
    hidden, mask = encode_text(tokenizer, encoder, texts)
    targets = [caption_targets(p, t) for p, t in batch]
    rows = torch.tensor([i for i, (pos, _, _) in enumerate(targets) for _ in pos])
    cols = torch.tensor([j for pos, _, _ in targets for j in pos])
    words = hidden[rows, cols]  # (objects, hidden)
    last = hidden[torch.arange(len(batch)), mask.sum(1) - 1]  # (B, hidden)
    loss, hits = hidden.new_zeros(()), {}
    for name, head in heads.object.items():
        y = torch.tensor([c for _, obj, _ in targets for c in obj[name]])
        logits = head(words)
        loss = loss + F.cross_entropy(logits, y)
        hits[name] = logits.argmax(-1) == y
    shapes = len(world.SHAPES)
    for name, head in heads.scene.items():
        y = torch.as_tensor(np.stack([s[name] for _, _, s in targets]))  # (B, shapes)
        logits = head(last).view(len(batch), shapes, -1)
        loss = loss + F.cross_entropy(logits.flatten(0, 1), y.flatten())
        hits[name] = (logits.argmax(-1) == y).all(1)  # every shape right
    y = torch.as_tensor(np.stack([s["scene_relations"] for _, _, s in targets]))
    logits = heads.relations(last)
    loss = loss + F.binary_cross_entropy_with_logits(logits, y)
    hits["scene_relations"] = ((logits > 0).float() == y).all(1)
    return loss, hits


def caption_accuracy(encoder, tokenizer, heads: Heads, captions) -> dict[str, float]:
    """Per head, the share of `captions`' answers the read-outs get right (scene heads: all of a
    caption's shapes / relations right)."""
    with torch.no_grad():
        _, hits = _losses_and_hits(encoder, tokenizer, heads, captions)
    return {k: float(v.float().mean()) for k, v in hits.items()}


def novel_captions() -> list[tuple[world.Prompt, str]]:
    """The held-out colour-shape pairs' prompts (the `novel` split), never in pretraining."""
    out = []
    for task in ("colors", "color_attr"):
        out += [(p, p.text) for p in world.enumerate_prompts(task, novel=True)]
    return out


def relation_token_similarity(tokenizer, text_encoder, pairs=world.SHAPE_PAIRS) -> dict:
    """How alike a text encoder's outputs are for opposite relations, per axis: the mean cosine
    similarity between "a photo of a A left of a B" and "... right of ..." (and above/below) at the
    relation's first word and at the last prompt token, over the shape pairs. 1.0 means the encoder
    passes no difference on to the transformer; S's fresh (seed 0) encoder gives 0.67-0.74 at the
    relation token and 0.82-0.86 at the last one, S's jointly trained one 0.988-0.999.

    Returns {"left/right": {"relation_token": c, "last_token": c}, "above/below": {...}}.
    """
    from lab.model import encode_text

    out = {}
    for first, second in world.RELATION_AXES:
        texts = [world.make_prompt("position", p, relation=r).text for p in pairs for r in (first, second)]
        ids = tokenizer([t.lower() for t in texts], add_special_tokens=True)["input_ids"]
        with torch.no_grad():
            embeds, mask = encode_text(tokenizer, text_encoder, texts)
        lengths = mask.sum(1)
        word = [tokenizer.convert_tokens_to_ids(r.split()[0]) for r in (first, second)]
        at_relation = torch.tensor([row.index(word[i % 2]) for i, row in enumerate(ids)])
        rows = torch.arange(len(texts))
        cos = {}
        for name, index in (("relation_token", at_relation), ("last_token", lengths - 1)):
            v = embeds[rows, index].float()
            cos[name] = float(F.cosine_similarity(v[0::2], v[1::2], dim=-1).mean())
        out[f"{first.split()[0]}/{second.split()[0]}"] = cos
    return out


def pretrain_text_encoder(cfg: TextEncoderConfig, out: str | Path, progress: bool = True) -> dict:
    """Pretrains the lab's text encoder and saves it with its tokenizer (`save_pretrained`), config,
    log and card to `out`, atomically. Returns the held-out read-out accuracies, on training-style
    captions ("heldout") and on the novel colour-shape pairs ("novel")."""
    from lab.checkpoint import atomic_directory
    from lab.config import save_config
    from lab.model import TextEncoderSize, build_text_encoder, build_tokenizer
    from lab.runlog import RunLog

    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer()
    encoder = build_text_encoder(tokenizer, TextEncoderSize.for_hidden(cfg.hidden_size))
    heads = Heads(cfg.hidden_size)
    params = list(encoder.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    heldout = sample_captions(cfg.eval_captions, np.random.default_rng(cfg.seed + 1), cfg.bare_fraction)
    before = relation_token_similarity(tokenizer, encoder)
    out = Path(out)
    with atomic_directory(out) as tmp:
        log = RunLog(tmp / "train_log.jsonl")
        for step in tqdm(range(cfg.steps), desc="text encoder", disable=not progress):
            encoder.train()
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            loss, _ = _losses_and_hits(
                encoder, tokenizer, heads, sample_captions(cfg.batch_size, rng, cfg.bare_fraction)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.step(step + 1, cfg.batch_size, loss=loss.item(), lr=opt.param_groups[0]["lr"])
        encoder.eval()
        metrics = {
            "heldout": caption_accuracy(encoder, tokenizer, heads, heldout),
            "novel": caption_accuracy(encoder, tokenizer, heads, novel_captions()),
            "relation_cosine": {"random init": before, "pretrained": relation_token_similarity(tokenizer, encoder)},
        }
        encoder.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_config(cfg, tmp / "pretrain_config.yaml")
        write_card(tmp, cfg, metrics)
    return metrics


def load_text_encoder(path: str | Path):
    """(tokenizer, frozen Gemma-2 encoder in eval mode) saved by `pretrain_text_encoder`."""
    from transformers import Gemma2Model, PreTrainedTokenizerFast

    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
        raise ValueError(f"{path} is not a text encoder directory (lab pretrain-text-encoder writes one)")
    encoder = Gemma2Model.from_pretrained(path).eval().requires_grad_(False)
    return PreTrainedTokenizerFast.from_pretrained(path), encoder


def write_card(out: Path, cfg: TextEncoderConfig, metrics: dict) -> None:
    from lab.zoo import write_model_card

    rows = ["| read-out | held-out captions | novel colour-shape pairs |", "| --- | ---: | ---: |"]
    for k, v in metrics["heldout"].items():
        rows.append(f"| {k} | {v:.3f} | {metrics['novel'].get(k, float('nan')):.3f} |")
    cos = ["| encoder | left/right (relation token / last token) | above/below |", "| --- | ---: | ---: |"]
    for name, c in metrics["relation_cosine"].items():
        lr_, ab = c["left/right"], c["above/below"]
        cos.append(
            f"| {name} | {lr_['relation_token']:.3f} / {lr_['last_token']:.3f} | "
            f"{ab['relation_token']:.3f} / {ab['last_token']:.3f} |"
        )
    summary = f"""A tiny Gemma-2 text encoder (hidden {cfg.hidden_size}) pretrained on the world's captions to state what
they say (`lab.text_encoder`): at each shape word that object's shape, colour, count and place relative to
the object named before it; at the last token every shape's count and colour and which relations hold.
Frozen, it stands in for SANA's pretrained Gemma-2 (`text_encoder:` in a TrainConfig).
{cfg.steps} steps x {cfg.batch_size} captions (training prompts only, {cfg.bare_fraction:.0%} without "a photo of"),
AdamW lr {cfg.lr}. Reproduce: `lab pretrain-text-encoder --config pretrain_config.yaml --out DIR`."""
    sections = {
        "Read-out accuracy (linear heads, discarded)": "\n".join(rows),
        'Cosine of "A left of B" vs "A right of B" (1.0: no difference reaches the denoiser)': "\n".join(cos),
    }
    write_model_card(out, "The lab's text encoder", summary, sections)
