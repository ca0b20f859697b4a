"""The lab's judge: a tiny LLaVA (CLIP vision tower + Llama decoder) trained to answer
"Does this image match the prompt: ...? Answer yes or no." like the judge of SANA 1.5's best-of-N.

    lab train-judge --config configs/judge.yaml --out checkpoints/judge

It is a standard transformers model (`LlavaForConditionalGeneration` + `LlavaProcessor`, a
word-level tokenizer with a chat template), saved with `save_pretrained`, so it loads with
`AutoModelForImageTextToText` / `AutoProcessor` and no lab code, and `lab.judge.VLMJudge` runs it
exactly as it runs a downloaded SmolVLM or Qwen2-VL. Training is plain next-token cross-entropy on
the answer word, over (image, prompt, yes/no) pairs from `lab.judge_data` (class-balanced).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lab import world
from lab.judge import QUESTION, VLMJudge, reliability
from lab.judge_data import JUDGE_SEED, degraded_render, judge_dataset
from lab.schedule import lr_at, warmup_cosine

SPECIAL = {"pad": "[PAD]", "unk": "[UNK]", "bos": "<s>", "eos": "</s>", "image": "<image>"}
CHAT_WORDS = (
    "user",
    "assistant",
    "does",
    "this",
    "image",
    "match",
    "the",
    "prompt",
    ":",
    "?",
    "answer",
    "yes",
    "or",
    "no",
    ".",
)
# The lab's chat template: "user : QUESTION <image> assistant : " -> the next token is the answer.
# The text goes before the image although the message lists the image first: in a causal decoder
# the image tokens can then attend to the prompt, so each patch can be checked against what the
# prompt asks. Image-first, a 2-layer decoder learnt mostly the task's prior (judge v2: balanced
# accuracy 0.50 on single objects, AUC 0.82 overall mostly between tasks).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} : "
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }} {% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image> {% endif %}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
)
PIXEL_MEAN = PIXEL_STD = (0.5, 0.5, 0.5)  # images to [-1, 1]
QUESTION_EXAMPLE = QUESTION.format(prompt="a photo of two red circles")


@dataclass(frozen=True)
class JudgeSize:
    """Shape of the lab's judge. The vision tower sees (64 / patch)^2 patches; each becomes one
    image token of the decoder."""

    vision_hidden: int = 64
    vision_layers: int = 4
    text_hidden: int = 96
    text_layers: int = 2
    heads: int = 4
    # pixels; 64x64 -> 8x8 = 64 image tokens. 16-pixel patches (16 tokens) train 1.5x faster but
    # plateaued at balanced accuracy 0.69 on held-out samples: an object is ~10-20 px, and counting
    # or placing it from one linear patch embedding is hard.
    patch: int = 8
    mlp_ratio: int = 4


JUDGE_SIZES = {"tiny": JudgeSize(32, 1, 32, 1, 2, 16), "lab": JudgeSize()}


def build_tokenizer():
    """Word-level tokenizer over the world's words, the question's words and the chat roles."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = sorted(set(world.vocabulary()) | set(CHAT_WORDS))
    vocab = {tok: i for i, tok in enumerate(list(SPECIAL.values()) + words)}
    tok = Tokenizer(WordLevel(vocab, unk_token=SPECIAL["unk"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # splits "circle?" into "circle", "?"
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        unk_token=SPECIAL["unk"],
        pad_token=SPECIAL["pad"],
        padding_side="left",
        extra_special_tokens={"image_token": SPECIAL["image"]},
    )


def build_judge(size: str | JudgeSize = "lab", seed: int = 0):
    """A fresh (model, processor) pair of the given size (a JUDGE_SIZES key or a JudgeSize)."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    if isinstance(size, str):
        if size not in JUDGE_SIZES:
            raise ValueError(f"unknown judge size {size!r}; expected one of {sorted(JUDGE_SIZES)}")
        size = JUDGE_SIZES[size]
    tokenizer = build_tokenizer()
    image_tokens = (world.IMAGE_SIZE // size.patch) ** 2
    vision = CLIPVisionConfig(
        hidden_size=size.vision_hidden,
        intermediate_size=size.mlp_ratio * size.vision_hidden,
        num_hidden_layers=size.vision_layers,
        num_attention_heads=size.heads,
        image_size=world.IMAGE_SIZE,
        patch_size=size.patch,
        projection_dim=size.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.text_hidden,
        intermediate_size=size.mlp_ratio * size.text_hidden,
        num_hidden_layers=size.text_layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=4 * image_tokens,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    # "full" keeps CLIP's class token (the scene summary of pretrain_vision) before the patch tokens.
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(SPECIAL["image"]),
        image_seq_length=image_tokens + 1,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessorPil(
        do_resize=False,
        do_center_crop=False,
        image_mean=list(PIXEL_MEAN),
        image_std=list(PIXEL_STD),
        size={"shortest_edge": world.IMAGE_SIZE},
        crop_size={"height": world.IMAGE_SIZE, "width": world.IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=size.patch,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )  # CLIP's class token
    return model, processor


BALANCES = ("answer", "task_answer")  # pair_weights
VISION_SCHEDULES = ("constant", "cosine")  # stage 1 after its warm-up
BALANCE_WORDS = {"answer": "yes and no weighing half each", "task_answer": "yes and no weighing half of every task"}


@dataclass(frozen=True)
class JudgeTrainConfig:
    """One judge training run: its data (see lab.judge_data) and optimisation."""

    size: str = "lab"  # JUDGE_SIZES key
    sample_models: tuple[str, ...] = ("S", "L@12")  # generators whose samples it learns from (lab.zoo specs)
    samples_per_model: tuple[int, ...] = (1536, 512)
    sample_seed: int = JUDGE_SEED  # model k's samples use seeds from sample_seed + k x seed_stride
    seed_stride: int = 10_000_000
    renders: int = 16384  # clean renders (blurred, noisy) added as cheap extra pairs
    miscounted_renders: int = 0  # renders of counting prompts with one object more or fewer than asked
    negatives_per_image: int = 4  # perturbed prompts paired with each image, besides its own
    generated_fraction: float = 0.5  # of each batch, pairs of generated samples (the rest: renders)
    holdout_fraction: float = 0.1  # of the generated images, for the validation printed while training
    vision_steps: int = 1000  # stage 1: the vision tower learns the scene (see pretrain_vision); 0 = skip
    vision_lr: float = 2e-3
    # stage 1 also teaches the class token which relations hold between which shapes (judge v5 read
    # position at chance: 0.51 asked "left of", 0.52 "right of" on a render of "left of")
    vision_relations: bool = False
    # of each stage-1 batch, generated samples (the training split's) with targets read from the evaluator's
    # detections (`detected_scene`): the tower then learns the generators' images as the evaluator sees them,
    # not only clean renders blurred (v5/v6: 0, renders only)
    vision_generated_fraction: float = 0.0
    # stage 1 also classifies how many of each shape the scene holds (0 to MAX_COUNT, any colour), from
    # renders whose counting scenes are drawn with the asked count -1, +0 or +1 (judge v7 did not count:
    # it said yes to 92% of renders with one object too many, `lab bench judge`'s count probe)
    vision_counts: bool = False
    # stage 1's learning rate after the warm-up: "constant" (v5 to v8) or "cosine" down to min_lr_ratio. v8's
    # stage-1 loss still fell 9% over its last 200 of 1,000 constant-lr steps, and stage 2 freezes that tower
    vision_schedule: str = "constant"
    freeze_vision: bool = True  # stage 2 trains projector + decoder only (LLaVA's recipe), keeping stage 1's features
    steps: int = 2000  # stage 2: the whole judge answers yes/no
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    balance: str = "answer"  # loss weights of the pairs: pair_weights (BALANCES)
    eval_every: int = 500
    seed: int = 0
    cache: str = "runs/judge_data"  # generated samples, reused across runs

    def __post_init__(self):
        if self.balance not in BALANCES:  # checked here, before minutes of data building
            raise ValueError(f"balance={self.balance!r} is unknown; expected one of {BALANCES}")
        if not 0.0 <= self.vision_generated_fraction <= 1.0:
            raise ValueError(f"vision_generated_fraction={self.vision_generated_fraction} must be in [0, 1]")
        if self.vision_schedule not in VISION_SCHEDULES:
            raise ValueError(f"vision_schedule={self.vision_schedule!r} is unknown; expected one of {VISION_SCHEDULES}")


def answer_loss(judge: VLMJudge, batch: dict, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted next-token cross-entropy of the answer word ("yes" for label 1, else "no") over the
    whole vocabulary, at the last position. `weights`: (B,) per pair (`pair_weights`)."""
    logits = judge.model(**batch).logits[:, -1].float()
    target = torch.where(labels.bool(), judge.yes_ids[0], judge.no_ids[0])
    return (F.cross_entropy(logits, target, reduction="none") * weights).sum() / weights.sum()


def pair_weights(labels, tasks, balance: str = "answer") -> np.ndarray:
    """(N,) loss weights of the training pairs, mean 1.

    - "answer": "yes" and "no" weigh half each over all pairs.
    - "task_answer": within every task, its answers share the task's weight equally (tasks keep
      their share of the data). A task whose pairs are mostly "no" (position, colour attribution:
      the generators rarely get them right) then cannot be learnt by always answering "no".
    """
    if balance not in BALANCES:
        raise ValueError(f"unknown balance {balance!r}; expected one of {BALANCES}")
    labels = np.asarray(labels).astype(int)
    groups = np.zeros(len(labels), dtype=int) if balance == "answer" else np.unique(tasks, return_inverse=True)[1]
    weights = np.empty(len(labels))
    for g in np.unique(groups):
        in_group = groups == g
        answers = np.unique(labels[in_group])
        for a in answers:
            cell = in_group & (labels == a)
            weights[cell] = in_group.sum() / (len(answers) * cell.sum())
    return weights / weights.mean()


def scene_targets(scene) -> np.ndarray:
    """What the vision tower's class token should know of a scene: the count of every (shape,
    colour) pair, over 4, and every shape's centroid (x, y), over the image side (0 when absent).
    (len(SHAPES) x len(COLORS) + 2 x len(SHAPES),) float32."""
    shapes, colors = world.SHAPES, list(world.COLORS)
    counts = np.zeros((len(shapes), len(colors)), np.float32)
    centres = np.zeros((len(shapes), 2), np.float32)
    for o in scene.objects:
        counts[shapes.index(o.shape), colors.index(o.color)] += 1
        centres[shapes.index(o.shape)] += (o.cx, o.cy)
    present = counts.sum(1, keepdims=True)
    centres = np.where(present > 0, centres / np.maximum(present, 1) / world.IMAGE_SIZE, 0)
    return np.concatenate([counts.ravel() / max(world.NUMBERS), centres.ravel()])


def relation_targets(scene) -> np.ndarray:
    """Which of GenEval's relations hold between the shapes of a scene: for every ordered pair of
    different shapes (A, B) and every relation, 1 when A and B are both there and the relation holds
    from A's first instance to B's (`geneval.relations_held`), else 0.
    (len(SHAPES) x (len(SHAPES) - 1) x len(RELATIONS),) float32, pairs in SHAPES order."""
    from lab.geneval import relations_held

    first = {}
    for o in scene.objects:
        first.setdefault(o.shape, o)
    out = []
    for a in world.SHAPES:
        for b in world.SHAPES:
            if a == b:
                continue
            held = relations_held(first[a].box, first[b].box) if a in first and b in first else []
            out += [float(r in held) for r in world.RELATIONS]
    return np.asarray(out, np.float32)


MAX_COUNT = max(world.NUMBERS) + 1  # stage 1's count classes: 0 .. one more than any prompt asks


def shape_counts(scene) -> np.ndarray:
    """How many objects of each shape (any colour) a scene holds, capped at MAX_COUNT.
    (len(SHAPES),) int64, in SHAPES order."""
    counts = np.zeros(len(world.SHAPES), np.int64)
    for o in scene.objects:
        counts[world.SHAPES.index(o.shape)] += 1
    return np.minimum(counts, MAX_COUNT)


def stage_one_scene(rng: np.random.Generator, miscount: bool) -> world.Scene:
    """A scene of a training prompt for stage 1; with `miscount`, a counting prompt's scene holds
    the asked count -1, +0 or +1 (equally often), so the tower sees every count up to MAX_COUNT."""
    prompt = world.sample_training_prompt(rng)
    if miscount and prompt.task == "counting":
        prompt = world.miscounted(prompt, prompt.include[0].count + int(rng.integers(-1, 2)))
    return world.sample_scene(prompt, int(rng.integers(2**31)))


def detected_scene(detections, config=None) -> world.Scene:
    """The scene the evaluator sees in an image: its detections of a known shape scoring at least
    GenEval's threshold, as world objects (each box's centre, and its longer side as the size). For
    generated samples, which have no true scene, stage 1 reads its targets from this."""
    from lab.detector import DEFAULT_EVAL

    config = config or DEFAULT_EVAL
    objects = []
    for d in detections:
        if d.shape in world.SHAPES and d.score >= config.min_score:
            x0, y0, x1, y1 = d.box
            objects.append(world.Object(d.shape, d.color, (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)))
    return world.Scene(tuple(objects))


PATCH_COVER = 1 / 8  # an object owns a patch when it covers at least this fraction of its pixels


def patch_targets(scene, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """What each image token should know: the shape and the colour of the object that covers most of
    its patch (at least PATCH_COVER of it), or "none" (index len(SHAPES) / len(COLORS)). Patches in
    row-major order, as CLIP's patch tokens. Returns two ((64 / patch)^2,) int64 arrays."""
    n, grid = world.IMAGE_SIZE, world.IMAGE_SIZE // patch
    ys, xs = np.mgrid[0:n, 0:n] + 0.5
    owner = np.full((n, n), -1)
    for i, o in enumerate(scene.objects):  # later objects are drawn on top
        owner[world.shape_mask(o.shape, xs, ys, o.cx, o.cy, o.size)] = i
    blocks = owner.reshape(grid, patch, grid, patch).transpose(0, 2, 1, 3).reshape(grid * grid, patch * patch)
    counts = np.stack([(blocks == i).sum(1) for i in range(len(scene.objects))], 1) if scene.objects else None
    shapes = np.full(grid * grid, len(world.SHAPES))
    colors = np.full(grid * grid, len(world.COLORS))
    if counts is not None:
        best = counts.argmax(1)
        owned = counts.max(1) >= PATCH_COVER * patch * patch
        names = list(world.COLORS)
        for k in np.flatnonzero(owned):
            o = scene.objects[best[k]]
            shapes[k], colors[k] = world.SHAPES.index(o.shape), names.index(o.color)
    return shapes, colors


def vision_lr_at(step: int, cfg: JudgeTrainConfig) -> float:
    """Stage 1's learning rate at `step` (0-based): `cfg.warmup_steps` of linear warm-up to
    `cfg.vision_lr`, then constant or (`vision_schedule: cosine`) a cosine down to `min_lr_ratio` of it."""
    if cfg.vision_schedule == "cosine":
        return warmup_cosine(step, cfg.vision_lr, cfg.warmup_steps, cfg.vision_steps, cfg.min_lr_ratio)
    return cfg.vision_lr * min(1.0, (step + 1) / cfg.warmup_steps)


def pretrain_vision(
    model, processor, cfg: JudgeTrainConfig, progress: bool = True, generated: np.ndarray | None = None
) -> list[float]:
    """Stage 1: the vision tower learns the scene from blurred, noisy renders: every patch token
    classifies the shape and colour of the object on it (`patch_targets`), and the class token
    regresses `scene_targets` (which shapes and colours, how many, where) and, with
    `cfg.vision_relations`, classifies `relation_targets` (which shape is left of, above... which).

    Why: trained from scratch end to end, the tiny decoder learnt the answer's prior per prompt and
    ignored the image (judge v2). With the class token alone (judge v4) the patch tokens stayed
    nearly alike (features varied ~0.5% across images) and the judge still read the image weakly.
    Patch tokens that name what is on them are what a decoder can match prompt words against.
    Measured on single-shape prompts: patch-shape accuracy 0.92 after 300 steps.

    `generated`: (M, 64, 64, 3) uint8 samples of the generators; `cfg.vision_generated_fraction` of
    every batch is drawn from them, their targets from the evaluator's detections (`detected_scene`).
    Returns the loss per step.
    """
    vision = model.model.vision_tower
    hidden, patch = vision.config.hidden_size, vision.config.patch_size
    heads = torch.nn.ModuleDict({
        "scene": torch.nn.Linear(hidden, len(scene_targets(world.Scene(())))),
        "shape": torch.nn.Linear(hidden, len(world.SHAPES) + 1),
        "color": torch.nn.Linear(hidden, len(world.COLORS) + 1),
    })  # fmt: skip
    if cfg.vision_relations:  # built only then: v5's recipe draws the same random numbers as before
        heads["relations"] = torch.nn.Linear(hidden, len(relation_targets(world.Scene(()))))
    if cfg.vision_counts:  # likewise: v7's recipe is unchanged
        heads["counts"] = torch.nn.Linear(hidden, len(world.SHAPES) * (MAX_COUNT + 1))
    opt = torch.optim.AdamW(list(vision.parameters()) + list(heads.parameters()), lr=cfg.vision_lr)
    rng = np.random.default_rng(cfg.seed)
    k = int(round(cfg.batch_size * cfg.vision_generated_fraction)) if generated is not None and len(generated) else 0
    if k:
        from lab import geneval

        seen = [detected_scene(geneval.detect(x)) for x in tqdm(generated, desc="detect", disable=not progress)]
    losses = []
    for step in tqdm(range(cfg.vision_steps), desc="judge vision tower", disable=not progress):
        scenes = [stage_one_scene(rng, cfg.vision_counts) for _ in range(cfg.batch_size - k)]
        images = [degraded_render(sc, rng) for sc in scenes]
        if k:
            picked = rng.choice(len(generated), k)
            scenes += [seen[i] for i in picked]
            images += list(generated[picked])
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        target = torch.as_tensor(np.stack([scene_targets(sc) for sc in scenes]))
        shapes, colors = (torch.as_tensor(np.stack(t)) for t in zip(*(patch_targets(sc, patch) for sc in scenes)))
        for g in opt.param_groups:
            g["lr"] = vision_lr_at(step, cfg)
        out = vision(pixel_values=pixels)
        tokens = out.last_hidden_state[:, 1:]  # (B, patches, hidden) after the class token
        loss = (
            F.mse_loss(heads["scene"](out.pooler_output), target)
            + F.cross_entropy(heads["shape"](tokens).flatten(0, 1), shapes.flatten())
            + F.cross_entropy(heads["color"](tokens).flatten(0, 1), colors.flatten())
        )
        if cfg.vision_relations:
            held = torch.as_tensor(np.stack([relation_targets(sc) for sc in scenes]))
            loss = loss + F.binary_cross_entropy_with_logits(heads["relations"](out.pooler_output), held)
        if cfg.vision_counts:
            counts = torch.as_tensor(np.stack([shape_counts(sc) for sc in scenes]))  # (B, shapes)
            logits = heads["counts"](out.pooler_output).view(len(scenes), len(world.SHAPES), MAX_COUNT + 1)
            loss = loss + F.cross_entropy(logits.flatten(0, 1), counts.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def batch_indices(pairs, cfg: JudgeTrainConfig, rng: np.random.Generator) -> np.ndarray:
    """`cfg.batch_size` pair indices, `generated_fraction` of them from generated samples (there are
    far fewer of those than renders, and they are what the judge will see)."""
    generated = np.flatnonzero(np.asarray(pairs.sources) != "render")
    rendered = np.flatnonzero(np.asarray(pairs.sources) == "render")
    k = (
        int(round(cfg.batch_size * cfg.generated_fraction))
        if len(generated) and len(rendered)
        else (cfg.batch_size if len(generated) else 0)
    )
    return (
        np.concatenate([rng.choice(generated, k), rng.choice(rendered, cfg.batch_size - k)])
        if k < cfg.batch_size
        else rng.choice(generated, k)
    )


def train_judge(cfg: JudgeTrainConfig, out: str | Path, progress: bool = True) -> dict:
    """Builds the data, trains the judge and saves it (model + processor + config + log) to `out`
    atomically. Returns the held-out validation metrics."""
    from lab.checkpoint import atomic_directory
    from lab.config import save_config
    from lab.runlog import RunLog

    data = judge_dataset(cfg, progress=progress)
    model, processor = build_judge(cfg.size, cfg.seed)
    train, val = data["train"], data["val"]
    generated = np.unique(train.image_index[np.asarray(train.sources) != "render"])  # the training split's samples
    vision_losses = (
        pretrain_vision(model, processor, cfg, progress, train.images[generated]) if cfg.vision_steps else []
    )
    judge = VLMJudge(model, processor, name="lab judge")
    labels = torch.as_tensor(train.labels)
    weights = torch.as_tensor(pair_weights(train.labels, train.tasks, cfg.balance), dtype=torch.float32)
    if cfg.freeze_vision and cfg.vision_steps:
        model.model.vision_tower.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    out = Path(out)
    with atomic_directory(out) as tmp:
        log = RunLog(tmp / "train_log.jsonl")
        for i, v in enumerate(vision_losses):
            log.step(i + 1 - len(vision_losses), cfg.batch_size, vision_loss=v)  # stage 1: steps <= 0
        bar = tqdm(range(cfg.steps), desc="train judge", disable=not progress)
        for step in bar:
            model.train()
            idx = batch_indices(train, cfg, rng)
            batch = judge.inputs(train.images_of(idx), [train.prompts[i] for i in idx])
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            loss = answer_loss(judge, batch, labels[idx], weights[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip)
            opt.step()
            row = {"loss": loss.item(), "lr": lr}
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                model.eval()
                scores = judge.score(val.images_of(np.arange(len(val))), val.prompts)
                metrics = reliability(scores, val.labels, val.tasks)
                row["val_balanced_accuracy"] = metrics["overall"]["balanced_accuracy"]
                row["val_auc"] = metrics["overall"]["auc"]
                bar.set_postfix(bal_acc=f"{row['val_balanced_accuracy']:.3f}", auc=f"{row['val_auc']:.3f}")
            log.step(step + 1, cfg.batch_size, **row)
        model.eval()
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        save_config(cfg, tmp / "train_config.yaml")
        write_card(tmp, cfg, metrics, sum(p.numel() for p in model.parameters()), len(train), len(val))
    return metrics


def reliability_markdown(metrics: dict) -> str:
    """Markdown rows of a `lab.judge.reliability` result: per task and overall."""
    rows = [
        "| task | pairs | evaluator yes | accuracy | balanced accuracy | AUC |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for task, r in (metrics["tasks"] | {"overall": metrics["overall"]}).items():
        rows.append(
            f"| {task} | {r['n']} | {r['positives']} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {r['auc']:.3f} |"
        )
    return "\n".join(rows)


def write_card(out: Path, cfg: JudgeTrainConfig, metrics: dict, params: int, train_pairs: int, val_pairs: int) -> None:
    """The judge's model card: what it is, what it learned from, and its held-out agreement with
    the evaluator (pairs of held-out generated images with their own and confusable prompts)."""
    from lab.zoo import write_model_card

    models = ", ".join(f"{m} ({n} samples)" for m, n in zip(cfg.sample_models, cfg.samples_per_model))
    miscounted = (
        f" and {cfg.miscounted_renders:,} of counting prompts drawn with one object more or fewer than asked"
        if cfg.miscounted_renders
        else ""
    )
    counts = (
        f"; how many of each shape it holds (0 to {MAX_COUNT}; counting scenes drawn with one object more or fewer "
        "a third of the time each)"
        if cfg.vision_counts
        else ""
    )
    stage1_images = "renders" + (
        f"; {cfg.vision_generated_fraction:.0%} of each batch generated samples, their targets from the evaluator's detections"
        if cfg.vision_generated_fraction
        else ""
    )
    summary = f"""A tiny LLaVA (CLIP vision tower + Llama decoder, {params / 1e6:.2f}M parameters, `{cfg.size}` size) that answers
"{QUESTION_EXAMPLE}" with the next-token logits of "yes" and "no", as the VLM judge of SANA 1.5's best-of-N.
It is a plain transformers model: `AutoModelForImageTextToText.from_pretrained` and
`AutoProcessor.from_pretrained` load it without the lab; `lab.judge.load_judge("checkpoints/judge")` runs it.

- Training pairs: {train_pairs:,} (image, prompt, yes/no), every label the GenEval-mini evaluator's verdict. Images:
  samples of {models} on training prompts, each with its own prompt and {cfg.negatives_per_image} confusable
  ones (count +-1, swapped relation or colours, another class), and {cfg.renders:,} blurred, noisy renders{miscounted};
  {cfg.generated_fraction:.0%} of every batch from the generated samples.
- Stage 1: {cfg.vision_steps} steps x {cfg.batch_size} images, AdamW lr {cfg.vision_lr} ({cfg.vision_schedule}), teaching
  the vision tower each patch's shape and colour, the scene's counts and
  centroids{" and which relations hold between which shapes" if cfg.vision_relations else ""}{counts} ({stage1_images}).
- Stage 2: {cfg.steps} steps x {cfg.batch_size} pairs, AdamW lr {cfg.lr} (cosine), next-token cross-entropy with
  {BALANCE_WORDS[cfg.balance]}; {"the vision tower frozen" if cfg.freeze_vision and cfg.vision_steps else "the vision tower trained too"}.
- Reproduce: `lab train-judge --config train_config.yaml --out DIR` with this folder's `train_config.yaml`
  (`train_log.jsonl` here)."""
    agreement = f"""{val_pairs:,} pairs from the {cfg.holdout_fraction:.0%} of generated images held out of training:

{reliability_markdown(metrics)}

Larger held-out sets (fresh seeds, and the novel colour-shape pairs): `lab bench judge` and the
scaling notebook (`reports/scaling/`)."""
    write_model_card(out, "The lab's judge", summary, {"Held-out agreement with the evaluator": agreement})


def quick_config(cfg: JudgeTrainConfig) -> JudgeTrainConfig:
    """A seconds-long smoke-test variant of `cfg` (tests, quick notebooks): a tiny judge on renders only."""
    return replace(
        cfg,
        size="tiny",
        sample_models=(),
        samples_per_model=(),
        renders=256,
        steps=4,
        batch_size=16,
        eval_every=4,
        warmup_steps=1,
        vision_steps=2,
    )
