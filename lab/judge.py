"""Judges: does an image match its prompt? A VLM answers yes or no, as in SANA 1.5's best-of-N.

    judge = load_judge("checkpoints/judge")          # any transformers image-text-to-text model
    scores = judge.score(images, prompts)            # per image: P(yes), yes and no logits
    scores.p_yes                                     # (N,) in [0, 1]

`VLMJudge` wraps any `AutoModelForImageTextToText` + `AutoProcessor` directory: the question goes
through the processor's chat template with the image, and the judge reads the next-token logits of
"yes" and "no" (every single-token spelling: "yes", "Yes", " yes", ...; their logits are pooled by
logsumexp). The same class runs a real VLM a user has on disk (SmolVLM, Qwen2-VL, LLaVA,
PaliGemma, ...) and the lab's own tiny judge (`lab train-judge`, `lab/judge_train.py`).

`OracleJudge` is the exact evaluator behind the same interface: an upper bound, always labelled
"oracle" in plots and the app, never a headline selector.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lab import geneval

QUESTION = "Does this image match the prompt: {prompt}? Answer yes or no."
YES_SPELLINGS = ("yes", "Yes", "YES", " yes", " Yes", " YES")
NO_SPELLINGS = ("no", "No", "NO", " no", " No", " NO")
ORACLE = "oracle"  # the name that selects the exact evaluator in load_judge, the CLI and the app
DEFAULT_JUDGE = "checkpoints/judge"
JUDGE_BATCH = 64  # images per VLM forward pass


@dataclass(frozen=True)
class JudgeScores:
    """A judge's answer per image: `p_yes` (N,) in [0, 1]; `yes_logit`, `no_logit` (N,) the
    next-token logits of the answer words (a VLM's p_yes = sigmoid(yes_logit - no_logit); the
    oracle's is 1 or 0)."""

    p_yes: np.ndarray
    yes_logit: np.ndarray
    no_logit: np.ndarray

    def __len__(self) -> int:
        return len(self.p_yes)

    @property
    def says_yes(self) -> np.ndarray:
        """(N,) bool: the judge's answer."""
        return self.yes_logit > self.no_logit

    @property
    def margin(self) -> np.ndarray:
        """(N,) float64 yes_logit - no_logit: orders images as P(yes) does, but does not saturate
        (float32 P(yes) is exactly 1.0 for every margin above ~17, so sorting by it ties)."""
        return self.yes_logit.astype(np.float64) - self.no_logit.astype(np.float64)

    @staticmethod
    def empty() -> JudgeScores:
        return JudgeScores(*(np.zeros(0, np.float32) for _ in range(3)))

    def take(self, index) -> JudgeScores:
        """The scores of the images at `index` (an int array or slice)."""
        return JudgeScores(self.p_yes[index], self.yes_logit[index], self.no_logit[index])

    @staticmethod
    def concat(parts: Sequence[JudgeScores]) -> JudgeScores:
        if not parts:
            return JudgeScores.empty()
        return JudgeScores(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("p_yes", "yes_logit", "no_logit"))
        )

    def to_json(self) -> list[dict]:
        return [
            {"p_yes": round(float(p), 4), "yes_logit": round(float(y), 4), "no_logit": round(float(n), 4)}
            for p, y, n in zip(self.p_yes, self.yes_logit, self.no_logit)
        ]


def _check_inputs(images, prompts) -> tuple[list[np.ndarray], list[str]]:
    batch = [np.round(x * 255).astype(np.uint8) for x in geneval.as_batch(images)]
    if isinstance(prompts, str):
        raise ValueError("prompts must be a list with one prompt per image, not a single string")
    prompts = list(prompts)
    if len(prompts) != len(batch):
        raise ValueError(f"{len(batch)} images but {len(prompts)} prompts; expected one prompt per image")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i} is empty ({p!r}); expected text such as 'a photo of a red circle'")
    return batch, prompts


class OracleJudge:
    """The exact evaluator (GenEval-mini) as a judge: P(yes) is 1 for a correct image, else 0.
    For upper bounds only."""

    name = ORACLE

    def __init__(self, config: geneval.EvalConfig = geneval.DEFAULT_EVAL):
        self.config = config

    def score(self, images, prompts: Sequence[str]) -> JudgeScores:
        batch, prompts = _check_inputs(images, prompts)
        correct = np.array(
            [geneval.evaluate_image(x, p, self.config).correct for x, p in zip(batch, prompts)], np.float32
        )
        return JudgeScores(correct, correct.copy(), 1 - correct)


def answer_token_ids(tokenizer, spellings: Sequence[str]) -> list[int]:
    """Ids of the spellings that the tokenizer writes as exactly one token (leading-space variants
    included), without duplicates. Raises ValueError when none is a single token."""
    ids = []
    for s in spellings:
        toks = tokenizer.encode(s, add_special_tokens=False)
        if len(toks) == 1 and toks[0] != tokenizer.unk_token_id and toks[0] not in ids:
            ids.append(toks[0])
    if not ids:
        raise ValueError(
            f"the judge's tokenizer writes none of {list(spellings)} as a single token; a yes/no "
            "judge needs single-token answers (expected a chat VLM's tokenizer)"
        )
    return ids


class VLMJudge:
    """Any transformers image-text-to-text model answering QUESTION about each image.

    Args:
        model: an `AutoModelForImageTextToText` model.
        processor: its `AutoProcessor` (tokenizer + image processor, with a chat template).
        name: shown in plots and the app.
        question: the question, with `{prompt}` where the prompt goes.
    """

    def __init__(self, model, processor, name: str = "vlm", question: str = QUESTION, batch_size: int = JUDGE_BATCH):
        if "{prompt}" not in question:
            raise ValueError(f"question {question!r} has no {{prompt}} placeholder")
        self.model, self.processor, self.name, self.question, self.batch_size = (
            model.eval(),
            processor,
            name,
            question,
            batch_size,
        )
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"  # the next-token logits of every row are then at position -1
        self.yes_ids = answer_token_ids(tokenizer, YES_SPELLINGS)
        self.no_ids = answer_token_ids(tokenizer, NO_SPELLINGS)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        name: str | None = None,
        **kwargs,
    ) -> VLMJudge:
        """Loads a model directory saved with `save_pretrained` (model + processor).

        Raises ValueError when `path` does not exist, is not an image-text-to-text model, or has
        no processor.
        """
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        from lab.model import quiet_hub_logging

        path = Path(path)
        if not (path / "config.json").is_file():
            what = "does not exist" if not path.exists() else "has no config.json"
            raise ValueError(
                f"judge {path} {what}; expected a transformers image-text-to-text model directory "
                f"(saved with save_pretrained) or {ORACLE!r}"
            )
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
        if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
            some = ", ".join(
                t
                for t in ("llava", "idefics3", "smolvlm", "qwen2_vl", "qwen2_5_vl", "paligemma", "gemma3")
                if t in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
            )
            raise ValueError(
                f"judge {path} is a {model_type!r} model, not an image-text-to-text one (expected e.g. {some})"
            )
        quiet_hub_logging()
        try:
            processor = AutoProcessor.from_pretrained(path)
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
        except Exception as e:  # missing files, bad weights: one message that names the directory
            raise ValueError(f"could not load the judge in {path}: {type(e).__name__}: {e}") from e
        if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
            raise ValueError(
                f"judge {path}: its processor ({type(processor).__name__}) has no tokenizer and image "
                "processor; expected a VLM processor"
            )
        return cls(model.to(device), processor, name=name or path.name, **kwargs)

    def prompt_text(self, prompt: str) -> str:
        """The model input for one image: the question in the processor's chat template."""
        question = self.question.format(prompt=prompt)
        if getattr(self.processor, "chat_template", None) is None:
            return question  # processors without a template (PaliGemma) place the image tokens themselves
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def inputs(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> dict:
        """Processor outputs (tensors on the model's device) for uint8 (64, 64, 3) images."""
        from PIL import Image

        pil = [[Image.fromarray(x)] for x in images]  # one image per text, nested as multi-image processors want
        batch = self.processor(
            text=[self.prompt_text(p) for p in prompts], images=pil, return_tensors="pt", padding=True
        )
        return batch.to(self.model.device)

    def answer_logits(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, vocab) next-token logits -> (yes, no) logits (B,), each pooled over its spellings."""
        logits = logits.float()
        return logits[:, self.yes_ids].logsumexp(-1), logits[:, self.no_ids].logsumexp(-1)

    @torch.no_grad()
    def score(self, images, prompts: Sequence[str]) -> JudgeScores:
        """Args: images (N, 64, 64, 3) uint8/float or a list; prompts: N texts. Returns JudgeScores."""
        batch, prompts = _check_inputs(images, prompts)
        parts = []
        for i in range(0, len(batch), self.batch_size):
            out = self.model(**self.inputs(batch[i : i + self.batch_size], prompts[i : i + self.batch_size]))
            yes, no = self.answer_logits(out.logits[:, -1])
            parts.append(JudgeScores(torch.sigmoid(yes - no).cpu().numpy(), yes.cpu().numpy(), no.cpu().numpy()))
        return JudgeScores.concat(parts)


def load_judge(spec: str | Path = DEFAULT_JUDGE, device: str | torch.device = "cpu"):
    """`"oracle"` -> OracleJudge; otherwise a model directory (from the working directory, else the
    repository root) -> VLMJudge."""
    from lab.provenance import repo_path

    if str(spec) == ORACLE:
        return OracleJudge()
    path = repo_path(spec)
    return VLMJudge.from_pretrained(path, device=device, name="lab judge" if path.name == "judge" else path.name)


# --------------------------------------------------------------------------------------------
# Reliability: a judge's answers against the exact evaluator's verdicts

CALIBRATION_BINS = 10  # equal-width bins of P(yes)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the probability that a random positive outscores a random
    negative, ties counting half), from ranks; NaN when one class is absent."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _agreement(margin: np.ndarray, says_yes: np.ndarray, labels: np.ndarray) -> dict:
    tpr = float(says_yes[labels].mean()) if labels.any() else float("nan")
    tnr = float((~says_yes[~labels]).mean()) if (~labels).any() else float("nan")
    return {
        "n": int(len(labels)),
        "positives": int(labels.sum()),
        "accuracy": float((says_yes == labels).mean()),
        "balanced_accuracy": float(np.nanmean([tpr, tnr])),
        "true_positive_rate": tpr,
        "true_negative_rate": tnr,
        "auc": roc_auc(margin, labels),  # the margin: P(yes) saturates at 1.0 and would tie
    }


def reliability(scores: JudgeScores, labels, tasks: Sequence[str], bins: int = CALIBRATION_BINS) -> dict:
    """How well a judge agrees with the evaluator.

    Args:
        scores: the judge's scores of N images.
        labels: (N,) bool, the evaluator's verdicts.
        tasks: N GenEval task names (per-task rows).
    Returns:
        {"overall": {...}, "tasks": {task: {...}}, "calibration": [{p_mean, yes_rate, n}, ...]} with
        accuracy, balanced accuracy, true positive/negative rates and ROC AUC.
    """
    labels, tasks = np.asarray(labels, bool), np.asarray(tasks)
    if len(labels) != len(scores) or len(tasks) != len(scores):
        raise ValueError(
            f"{len(scores)} scores, {len(labels)} labels and {len(tasks)} tasks; expected one each per image"
        )
    p, margin, yes = scores.p_yes, scores.margin, scores.says_yes
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    calibration = [
        {
            "p_mean": float(p[which == b].mean()),
            "yes_rate": float(labels[which == b].mean()),
            "n": int((which == b).sum()),
        }
        for b in range(bins)
        if (which == b).any()
    ]
    per_task = {
        t: _agreement(margin[tasks == t], yes[tasks == t], labels[tasks == t]) for t in dict.fromkeys(tasks.tolist())
    }
    from lab.world import TASKS

    per_task = {t: per_task[t] for t in TASKS if t in per_task} | {t: v for t, v in per_task.items() if t not in TASKS}
    return {"overall": _agreement(margin, yes, labels), "tasks": per_task, "calibration": calibration}


def count_errors_array(errors) -> np.ndarray:
    """Count errors (`geneval.count_error`: int, or None outside counting) as a float array, NaN for None."""
    return np.array([np.nan if e is None else e for e in errors], dtype=float)


def by_count_error(scores: JudgeScores, errors) -> list[dict]:
    """The judge on counting images grouped by the evaluator's count error (`geneval.count_error`:
    objects detected minus objects asked). A judge that counts gives error 0 the highest P(yes); one
    that only checks "at least N" ranks +1 as high, and best-of-N then drifts to extra objects.

    Args:
        scores: the judge's scores of N images. errors: (N,) count errors; None or NaN for images
            of other tasks (left out).
    Returns:
        one row per error value present, ascending: {"error", "n", "p_yes_mean", "says_yes"}.
    """
    errors = count_errors_array(errors)
    if len(errors) != len(scores):
        raise ValueError(f"{len(scores)} scores and {len(errors)} count errors; expected one each per image")
    rows = []
    for e in np.unique(errors[~np.isnan(errors)]):
        at = errors == e
        rows.append(
            {
                "error": int(e),
                "n": int(at.sum()),
                "p_yes_mean": float(scores.p_yes[at].mean()),
                "says_yes": float(scores.says_yes[at].mean()),
            }
        )
    return rows
