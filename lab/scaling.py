"""Inference-time scaling: best-of-N candidates ranked by a judge in SANA 1.5's tournament.

    result = best_of_n(pipe, "a photo of two red circles", n=16, judge=load_judge())
    result.winner, result.ranking, result.bracket     # index, indices best first, rounds of matches

Candidate i starts from the noise of seed `seed + i` (`lab.sampling.candidate_seeds`), so it is the
same image alone, in any batch, or on another process. Every candidate is judged once and its
scores are cached, so a best-of-N costs exactly N judge calls (the reference script re-judges the
survivors every round: about 2N).

The tournament (SANA 1.5, section 4; the reference `inference_scaling` script) pairs candidates
round by round; each match compares the two judge answers: yes beats no; two yes: the higher
yes-logit wins; two no: the lower no-logit wins. That rule is a total order, so the winner is its
maximum and the ranking is the candidates sorted by it; the bracket records who met whom and why,
for the app to draw.

Under `accelerate launch`, `best_of_n(..., distributed=True)` splits the candidates between the
processes, each generates and judges its share, and the scores are gathered on every process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from lab.judge import JudgeScores
from lab.sampling import SamplerConfig, candidate_seeds, generate, native_resolution, nfe_per_image

SELECTIONS = ("tournament", "topk", "score")
MAX_CANDIDATES = 1024  # N above this is refused: a typo, not an experiment, on a CPU
TOPK_FINALISTS = 4  # the reference script's k: tournament rounds until k remain, then by score


@dataclass(frozen=True)
class Match:
    """One pairing of a round: candidates `a` and `b` (None: `a` has a bye), who won and why."""

    round: int
    a: int
    b: int | None
    winner: int
    reason: str

    def to_json(self) -> dict:
        return {"round": self.round, "a": self.a, "b": self.b, "winner": self.winner, "reason": self.reason}


def preference(scores: JudgeScores, i: int) -> tuple[bool, float]:
    """Candidate i's place in SANA's order (larger is better): yes first; among yes the higher
    yes-logit; among no the lower no-logit."""
    yes = bool(scores.says_yes[i])
    return yes, float(scores.yes_logit[i]) if yes else -float(scores.no_logit[i])


def play_match(scores: JudgeScores, a: int, b: int, round: int = 1) -> Match:
    """SANA's pairwise rule between candidates a and b (ties go to a, the earlier candidate)."""
    ya, yb = bool(scores.says_yes[a]), bool(scores.says_yes[b])
    winner = a if preference(scores, a) >= preference(scores, b) else b
    loser = b if winner == a else a
    if ya != yb:
        reason = "yes beats no"
    elif ya:
        reason = f"both yes: yes-logit {scores.yes_logit[winner]:.2f} vs {scores.yes_logit[loser]:.2f}"
    else:
        reason = f"both no: no-logit {scores.no_logit[winner]:.2f} vs {scores.no_logit[loser]:.2f}"
    return Match(round, a, b, winner, reason)


def tournament(scores: JudgeScores, until: int = 1) -> tuple[list[list[Match]], list[int]]:
    """Single elimination over all candidates until `until` remain.

    Returns (bracket: one list of matches per round, survivors). Each round pairs the pool in
    order (1st vs 2nd, 3rd vs 4th, ...); an odd one out advances with a bye. N candidates take
    N - 1 matches to one winner.
    """
    if not isinstance(until, int | np.integer) or until < 1:
        raise ValueError(f"{until!r} survivors (k); expected an integer >= 1")
    pool, bracket = list(range(len(scores))), []
    while len(pool) > until:
        r = len(bracket) + 1
        matches = [play_match(scores, pool[i], pool[i + 1], r) for i in range(0, len(pool) - 1, 2)]
        if len(pool) % 2:
            matches.append(Match(r, pool[-1], None, pool[-1], "bye"))
        bracket.append(matches)
        pool = [m.winner for m in matches]
    return bracket, pool


def rank(
    scores: JudgeScores, select: str = "tournament", k: int = TOPK_FINALISTS
) -> tuple[list[int], list[list[Match]]]:
    """Orders the candidates, best first, and returns (ranking, bracket).

    `tournament`: the bracket to one winner; ranking by SANA's order. `topk`: the bracket until k
    remain (the reference script), finalists by P(yes), then the rest by SANA's order. `score`:
    by P(yes) alone, no bracket. P(yes) is compared as the logit margin (`JudgeScores.margin`: the
    same order, without float32's saturation at 1.0); ties keep index order.
    """
    check_selection(select, k)
    n = len(scores)
    if n == 0:
        return [], []
    by_order = sorted(range(n), key=lambda i: preference(scores, i), reverse=True)  # stable: ties keep index order
    margin = scores.margin
    if select == "score":
        return sorted(range(n), key=lambda i: -margin[i]), []
    if select == "tournament":
        bracket, (winner,) = tournament(scores)
        return [winner] + [i for i in by_order if i != winner], bracket
    bracket, finalists = tournament(scores, until=k)
    finalists = sorted(finalists, key=lambda i: -margin[i])
    return finalists + [i for i in by_order if i not in finalists], bracket


def check_selection(select: str, k: int = TOPK_FINALISTS) -> None:
    """Raises ValueError for an unknown selection rule or a `topk` k below 1."""
    if select not in SELECTIONS:
        raise ValueError(f"unknown selection {select!r}; expected one of {SELECTIONS}")
    if select == "topk" and (not isinstance(k, int | np.integer) or k < 1):
        raise ValueError(f"k = {k!r} finalists; expected an integer >= 1")


def check_n(n: int, most: int = MAX_CANDIDATES) -> None:
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1 or n > most:
        raise ValueError(f"N = {n!r} candidates; expected an integer from 1 to {most}")


@dataclass
class BestOfN:
    """The outcome of one best-of-N, as far as it has got (see `best_of_n_steps`).

    images (n, H, W, 3) uint8 of the candidates generated so far; `scores` their judge scores;
    `ranking` candidate indices best first and `bracket` the rounds of matches (empty until ranked).
    """

    prompt: str
    n: int
    seeds: list[int]
    select: str
    judge: str
    images: np.ndarray
    scores: JudgeScores | None = None
    ranking: list[int] = field(default_factory=list)
    bracket: list[list[Match]] = field(default_factory=list)
    judge_calls: int = 0  # images judged (each candidate once)
    model_calls: int = 0  # transformer forward passes per candidate x candidates (NFE; CFG counts 2)
    blocks: int = 0  # transformer blocks per forward
    seconds: dict = field(default_factory=lambda: {"generate": 0.0, "judge": 0.0})

    @property
    def winner(self) -> int | None:
        return self.ranking[0] if self.ranking else None

    @property
    def done(self) -> bool:
        return bool(self.ranking)

    def to_json(self) -> dict:
        return {
            "prompt": self.prompt,
            "n": self.n,
            "seeds": self.seeds,
            "select": self.select,
            "judge": self.judge,
            "winner": self.winner,
            "ranking": self.ranking,
            "scores": self.scores.to_json() if self.scores else [],
            "bracket": [[m.to_json() for m in r] for r in self.bracket],
            "judge_calls": self.judge_calls,
            "model_calls": self.model_calls,
            "blocks": self.blocks,
            "seconds": self.seconds,
        }


def best_of_n_steps(
    pipe,
    prompt: str,
    n: int,
    judge,
    select: str = "tournament",
    seed: int = 0,
    sampler: SamplerConfig = SamplerConfig(),
    k: int = TOPK_FINALISTS,
    indices: list[int] | None = None,
) -> Iterator[BestOfN]:
    """Best-of-N as a stream: yields the growing result after each batch of candidates is
    generated and judged, then once more ranked (`result.done`). The app draws each snapshot.

    Args:
        pipe: any SanaPipeline.
        prompt: the text.
        n: candidates (1..MAX_CANDIDATES).
        judge: anything with `score(images, prompts) -> JudgeScores` and a `name`.
        select: one of SELECTIONS.
        seed: candidate i uses seed + i.
        sampler: steps, CFG and batch size (candidates per pipeline call).
        indices: generate only these candidates (a process's share; None: all n). No ranking then.
    """
    check_n(n)
    check_selection(select, k)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"empty prompt {prompt!r}; expected text such as 'a photo of a red circle'")
    seeds = candidate_seeds(seed, n)
    mine = list(range(n)) if indices is None else list(indices)
    side = native_resolution(pipe)
    result = BestOfN(
        prompt,
        n,
        [seeds[i] for i in mine],
        select,
        getattr(judge, "name", type(judge).__name__),
        np.zeros((0, side, side, 3), np.uint8),
        blocks=len(pipe.transformer.transformer_blocks),
    )
    images, parts = [], []
    if not mine:  # a process with no share (n < processes) still reports, with nothing
        result.scores = JudgeScores.empty()
        yield result
    for start in range(0, len(mine), sampler.batch_size):
        chunk = [seeds[i] for i in mine[start : start + sampler.batch_size]]
        t0 = time.perf_counter()
        images.append(generate(pipe, [prompt] * len(chunk), chunk, sampler))
        t1 = time.perf_counter()
        parts.append(judge.score(images[-1], [prompt] * len(chunk)))
        t2 = time.perf_counter()
        result.seconds["generate"] += t1 - t0
        result.seconds["judge"] += t2 - t1
        result.judge_calls += len(chunk)
        result.model_calls += len(chunk) * nfe_per_image(sampler)
        result.images, result.scores = np.concatenate(images), JudgeScores.concat(parts)
        yield result
    if indices is None:
        result.ranking, result.bracket = rank(result.scores, select, k)
        yield result


def best_of_n(
    pipe,
    prompt: str,
    n: int,
    judge,
    select: str = "tournament",
    seed: int = 0,
    sampler: SamplerConfig = SamplerConfig(),
    k: int = TOPK_FINALISTS,
    distributed: bool = False,
    on_update: Callable[[BestOfN], None] | None = None,
) -> BestOfN:
    """Generates n candidates, judges each once, ranks them; returns the finished BestOfN.

    With `distributed=True` (under `accelerate launch`), process r generates and judges the
    candidates `accelerate` assigns it, the images and scores are gathered, and every process
    ranks the same full set (candidate i is the same image whichever process made it);
    `on_update` is then not called (a process sees only its share until the gather).
    """
    if not distributed:
        result = None
        for result in best_of_n_steps(pipe, prompt, n, judge, select, seed, sampler, k):
            if on_update is not None:
                on_update(result)
        return result
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object

    # cpu=True on GPU-less machines: the processes then join over gloo (as the trainer does)
    state = PartialState(cpu=not torch.cuda.is_available())
    with state.split_between_processes(list(range(n))) as mine:
        *_, share = best_of_n_steps(pipe, prompt, n, judge, select, seed, sampler, k, indices=mine)
    gathered = gather_object([(mine, share.images, share.scores, share.seconds, share.model_calls, share.judge_calls)])
    order = np.argsort(np.concatenate([g[0] for g in gathered]), kind="stable")
    result = BestOfN(
        prompt,
        n,
        candidate_seeds(seed, n),
        select,
        share.judge,
        np.concatenate([g[1] for g in gathered])[order],
        JudgeScores.concat([g[2] for g in gathered]).take(order),
        judge_calls=sum(g[5] for g in gathered),
        model_calls=sum(g[4] for g in gathered),
        blocks=share.blocks,
        seconds={key: max(g[3][key] for g in gathered) for key in ("generate", "judge")},
    )
    result.ranking, result.bracket = rank(result.scores, select, k)
    return result
