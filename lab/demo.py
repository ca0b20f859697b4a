"""The app's logic: best-of-N on a chosen model and depth, streamed frame by frame for a UI.

    session = DemoSession(DemoConfig(models={"S": "checkpoints/S", "L": "checkpoints/L"}))
    for frame in session.run("a photo of two circles", model="L", depth=12, n=16):
        frame.gallery, frame.bracket, frame.winner, frame.compute      # what the page shows now

`app.py` is layout and wiring over this module; the tests and `lab bench app` drive the same
functions. Nothing here imports gradio: problems come back as `DemoError` (shown as gr.Error) or
as warnings in a frame (shown as gr.Warning).

A session caches one pipeline per (model, depth): the full model is loaded once and each pruned
depth is cut from it once (`lab.pruning.pruned_pipeline`, sharing the text encoder and VAE); the
least recently used pruned depths beyond `cached_depths` are dropped.
Candidates are generated in a small first batch, so the first images show within about a second
on a CPU, then in batches of the size that is fastest per image.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lab import geneval, world
from lab.judge import DEFAULT_JUDGE, OracleJudge, load_judge
from lab.provenance import REPO_ROOT, repo_path
from lab.sampling import SamplerConfig
from lab.scaling import BestOfN, best_of_n_steps, check_n, rank

DEFAULT_MODELS = {"S": "checkpoints/S", "L": "checkpoints/L"}
ORACLE_CHOICE = "oracle (exact evaluator)"  # never the default: an upper bound, for comparison
FRONTIER_IMAGE = REPO_ROOT / "reports" / "scaling" / "frontier.png"  # written by the scaling notebook
EXAMPLE_PROMPT_SET = "quick"
WINNER_MARK = "\u2605"  # a star: in DejaVu and every browser font, unlike emoji
SHOWN_LOAD_SECONDS = 0.05  # model loading shorter than this (a cached model) is left out of the compute line


class DemoError(ValueError):
    """Bad input or a checkpoint that does not load: the message is meant for the page."""


@dataclass(frozen=True)
class DemoConfig:
    """What the app serves and its defaults."""

    models: dict = field(default_factory=lambda: dict(DEFAULT_MODELS))  # label -> SanaPipeline directory
    judge: str = DEFAULT_JUDGE  # the default judge: a transformers image-text-to-text directory
    device: str = "auto"  # "auto": CUDA when present, else CPU
    first_batch: int = 2  # candidates in the first pipeline call: S shows them in ~0.5 s on 2 CPU cores
    batch_size: int = 8  # candidates per later call: the fastest per image for S on 2 CPU cores
    max_n: int = 64  # the N slider's top
    n: int = 8  # default N
    steps: int = SamplerConfig.steps  # the sampler's default (SANA's Flow-DPM-Solver)
    guidance_scale: float = SamplerConfig.guidance_scale  # the sampler's default (SANA's CFG)
    seed: int = 0
    examples_per_task: int = 3  # example prompts shown per GenEval task
    cached_depths: int = 8  # pruned pipelines kept (least recently used go first): memory stays bounded


@dataclass
class Frame:
    """One snapshot of a best-of-N for the page.

    gallery: (image (64, 64, 3) uint8, caption) per candidate, in generation order until ranked,
    then best first; indices: the candidate index of each gallery item. bracket / best_so_far: matplotlib Figures or None. winner: the winning image
    or None. summary: JSON-ready result (scores, verdicts, ranking, bracket, compute).
    """

    stage: str
    gallery: list[tuple[np.ndarray, str]]
    bracket: object | None
    winner: np.ndarray | None
    winner_text: str
    compute: str
    best_so_far: object | None
    summary: dict
    indices: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class CandidateFiles:
    """Each candidate's PNG, written once per run (atomically) into a temporary directory that lives
    as long as this object.

    For UIs that serve files: gradio re-encodes an array output into the same cached path on every
    streamed frame, truncating it first, so a browser still fetching the previous frame's copy can
    read a truncated file. A file path output is copied once instead.
    """

    def __init__(self):
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="lab-demo-")
        self._paths: dict[int, str] = {}

    def path(self, index: int, image: np.ndarray) -> str:
        """The PNG of candidate `index` (written on first use)."""
        if index not in self._paths:
            from PIL import Image

            final = Path(self._dir.name) / f"candidate_{index}.png"
            partial = final.with_suffix(".part")
            Image.fromarray(np.asarray(image, np.uint8)).save(partial, format="PNG")
            partial.replace(final)
            self._paths[index] = str(final)
        return self._paths[index]


# --- input -----------------------------------------------------------------------------------------


def check_prompt(text: str) -> world.Prompt:
    """The prompt parsed into GenEval metadata, or DemoError naming the unknown words and what the
    world knows (or the templates it accepts)."""
    text = (text or "").strip()
    if not text:
        raise DemoError("Type a prompt first, e.g. 'a photo of two circles'.")
    unknown = world.unknown_words(text)
    if unknown:
        raise DemoError(
            f"Unknown words: {', '.join(repr(w) for w in unknown)}. The world knows: {', '.join(world.vocabulary())}."
        )
    try:
        return world.parse_prompt(text)
    except ValueError as e:
        raise DemoError(str(e)) from e


def check_count(n, most: int) -> int:
    """N as an int in 1..most, or DemoError."""
    try:
        number = int(n)
        if number != n:
            raise ValueError
        check_n(number, most)
    except (TypeError, ValueError) as e:
        raise DemoError(f"N = {n!r}: choose a whole number of candidates from 1 to {most}.") from e
    return number


def example_prompts(per_task: int, prompt_set: str = EXAMPLE_PROMPT_SET) -> dict[str, list[str]]:
    """Up to `per_task` distinct prompt texts per GenEval task, in `world.TASKS` order."""
    by_task: dict[str, list[str]] = {t: [] for t in world.TASKS}
    for p in world.load_prompts(prompt_set):
        texts = by_task.setdefault(p.task, [])
        if p.text not in texts and len(texts) < per_task:
            texts.append(p.text)
    return by_task


def random_prompt(rng: np.random.Generator | None = None, prompt_set: str = "full") -> str:
    """A prompt text drawn from a stored set (fresh randomness unless `rng` is given)."""
    prompts = world.load_prompts(prompt_set)
    return prompts[int((rng or np.random.default_rng()).integers(len(prompts)))].text


def batch_schedule(n: int, first: int, size: int) -> list[list[int]]:
    """Candidate indices per pipeline call: `first` of them, then `size` at a time."""
    cuts = [0, min(first, n)]
    while cuts[-1] < n:
        cuts.append(min(cuts[-1] + size, n))
    return [list(range(a, b)) for a, b in zip(cuts, cuts[1:]) if b > a]


# --- captions, compute, best-so-far ----------------------------------------------------------------


def caption(index: int, p_yes: float, verdict: geneval.Verdict, place: int | None = None) -> str:
    """'#3  P(yes)=0.93 ✓ all requirements met', led by the rank once ranked (a star for the winner)."""
    lead = "" if place is None else (f"{WINNER_MARK} winner  " if place == 0 else f"{place + 1}.  ")
    return f"{lead}#{index}  P(yes)={p_yes:.2f} {geneval_mark(verdict)} {verdict.reason}"


def geneval_mark(verdict: geneval.Verdict) -> str:
    from lab.plots import MARKS

    return MARKS[bool(verdict.correct)]


def compute_line(result: BestOfN, load_seconds: float = 0.0) -> str:
    """Seconds, model calls (NFE), judge calls and blocks of a best-of-N so far."""
    gen, judged = result.seconds["generate"], result.seconds["judge"]
    loading = f", loading {load_seconds:.1f} s" if load_seconds >= SHOWN_LOAD_SECONDS else ""
    return (
        f"**{gen + judged:.1f} s** (generate {gen:.1f} s, judge {judged:.2f} s{loading}) · "
        f"**{result.model_calls}** model calls (NFE) · **{result.judge_calls}** judge calls · "
        f"**{result.blocks}** blocks per call · judge: {result.judge}"
    )


def best_so_far(result: BestOfN, verdicts: Sequence[geneval.Verdict]) -> tuple[np.ndarray, np.ndarray]:
    """For N = 1..n: is the judge's pick among the first N candidates correct, and is any of them?

    Returns two (n,) bool arrays (the pick by the same selection rule as the full run)."""
    correct = np.array([v.correct for v in verdicts], bool)
    picks = [rank(result.scores.take(np.arange(k)), result.select)[0][0] for k in range(1, len(correct) + 1)]
    return correct[picks], np.maximum.accumulate(correct)


# --- the session: cached models and judges, the streamed run ---------------------------------------


def _device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


class DemoSession:
    """Cached pipelines per (model, depth) and judges per choice, and `run`, the streamed best-of-N."""

    def __init__(self, config: DemoConfig = DemoConfig()):
        self.config = config
        self.device = _device(config.device)
        self._pipes: OrderedDict[tuple[str, int | None], object] = OrderedDict()  # full models and pruned depths
        self._judges: dict[str, object] = {}
        self._tables: dict[str, object] = {}
        self._lock = threading.Lock()  # one loader at a time; the queue runs one best-of-N at a time

    # models --------------------------------------------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        return list(self.config.models)

    def model_path(self, name: str) -> Path:
        if name not in self.config.models:
            raise DemoError(f"unknown model {name!r}; this app serves {', '.join(self.config.models)}")
        return repo_path(self.config.models[name])

    def importance(self, name: str):
        """The block ranking shipped beside model `name` (`importance.json`), or None: not prunable."""
        from lab.pruning import ImportanceTable
        from lab.zoo import IMPORTANCE_TABLE

        if name not in self._tables:
            path = self.model_path(name) / IMPORTANCE_TABLE
            try:
                self._tables[name] = ImportanceTable.load(path) if path.is_file() else None
            except ValueError as e:
                raise DemoError(f"model {name}: {e}") from e
        return self._tables[name]

    def depths(self, name: str) -> tuple[int, int] | None:
        """(1, full depth) for a model that prunes on load, None for one that does not."""
        table = self.importance(name)
        return None if table is None else (1, table.num_blocks)

    def kept_blocks(self, name: str, depth: int | None) -> list[int] | None:
        """Indices of the blocks depth `depth` keeps (all of them at full depth); None if not prunable."""
        from lab.pruning import select_blocks

        table = self.importance(name)
        if table is None or depth is None:
            return None
        depth = self._check_depth(name, depth)
        return (
            list(range(table.num_blocks))
            if depth == table.num_blocks
            else select_blocks(table.num_blocks, depth, importance=table)
        )

    def _check_depth(self, name: str, depth) -> int | None:
        span = self.depths(name)
        if span is None or depth is None:
            return None
        if not span[0] <= int(depth) <= span[1]:
            raise DemoError(f"depth {depth} for model {name}; choose {span[0]} to {span[1]} blocks")
        return int(depth)

    def pipeline(self, name: str, depth: int | None = None):
        """Model `name` at `depth` blocks (None or full: unpruned), loaded or pruned once and cached."""
        from lab.model import load_pipeline
        from lab.pruning import pruned_pipeline

        depth = self._check_depth(name, depth)
        full_depth = None if depth is None else self.depths(name)[1]
        key = (name, None if depth == full_depth else depth)
        with self._lock:
            if (name, None) not in self._pipes:
                path = self.model_path(name)
                try:
                    self._pipes[(name, None)] = load_pipeline(path, device=self.device)
                except Exception as e:  # a broken directory: say which, keep the app alive
                    raise DemoError(f"could not load model {name} from {path}: {e}") from e
            if key not in self._pipes:
                self._pipes[key] = pruned_pipeline(self._pipes[(name, None)], self.kept_blocks(name, depth))
            pipe = self._pipes[key]
            self._pipes.move_to_end(key)
            pruned = [k for k in self._pipes if k[1] is not None]
            for old in pruned[: max(0, len(pruned) - self.config.cached_depths)]:
                del self._pipes[old]
        return pipe

    # judges --------------------------------------------------------------------------------------
    @property
    def judge_label(self) -> str:
        """The default judge's name in the dropdown."""
        return f"lab judge ({self.config.judge})"

    @property
    def judge_choices(self) -> list[str]:
        return [self.judge_label, ORACLE_CHOICE]

    def judge_problem(self) -> str | None:
        """Why the default judge cannot load (a message for the page), or None when it can."""
        try:
            self.judge(self.judge_label)
        except DemoError as e:
            return str(e)
        return None

    def judge(self, choice: str):
        """The judge for a dropdown choice; DemoError when the default judge does not load."""
        if choice == ORACLE_CHOICE:
            return OracleJudge()
        if choice != self.judge_label:
            raise DemoError(f"unknown judge {choice!r}; choose one of {self.judge_choices}")
        with self._lock:
            if choice not in self._judges:
                where = self.config.judge
                if not repo_path(where).exists():
                    raise DemoError(
                        f"No judge at {where} yet: train it with `lab train-judge` or start the app with --judge PATH."
                    )
                try:
                    self._judges[choice] = load_judge(where, device=self.device)
                except Exception as e:
                    raise DemoError(
                        f"The judge in {where} did not load ({e}); start the app with --judge PATH "
                        f"or pick '{ORACLE_CHOICE}'."
                    ) from e
        return self._judges[choice]

    # the run -------------------------------------------------------------------------------------
    def run(
        self,
        prompt: str,
        model: str,
        depth: int | None = None,
        n: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        judge: str | None = None,
        draw: bool = True,
    ) -> Iterator[Frame]:
        """Best-of-N as frames: one per batch of candidates (generated and judged), then one per
        round of the bracket, the last with the winner.

        Args:
            prompt: text in the world's language. model: a name of `config.models`. depth: blocks
                of a prunable model (None: full). n: candidates (1..config.max_n). steps, guidance_scale,
                seed: the sampler (candidate i uses seed + i). judge: a `judge_choices` entry (default
                the lab judge; if it fails to load, the oracle with a warning). draw: make figures.
        Raises DemoError on bad input or a model that does not load.
        """
        c = self.config
        parsed = check_prompt(prompt)
        n = check_count(c.n if n is None else n, c.max_n)
        steps = c.steps if steps is None else int(steps)
        if steps < 1:
            raise DemoError(f"steps = {steps}; choose at least 1")
        guidance_scale = c.guidance_scale if guidance_scale is None else float(guidance_scale)
        seed = c.seed if seed is None else int(seed)
        warnings = []
        try:
            scorer = self.judge(judge or self.judge_label)
        except DemoError as e:
            warnings.append(f"{e} Ranking with the {ORACLE_CHOICE} instead.")
            scorer = self.judge(ORACLE_CHOICE)
        t0 = time.perf_counter()
        pipe = self.pipeline(model, depth)
        loaded = time.perf_counter() - t0
        sampler = SamplerConfig(steps, guidance_scale, c.batch_size)
        result, verdicts = None, []
        for chunk in batch_schedule(n, c.first_batch, c.batch_size):
            *_, part = best_of_n_steps(
                pipe, parsed.text, n, scorer, seed=seed, indices=chunk, sampler=replace(sampler, batch_size=len(chunk))
            )
            result = part if result is None else _merge(result, part)
            verdicts += [geneval.evaluate_image(x, parsed) for x in part.images]
            yield self._frame("generating", result, verdicts, loaded, warnings, draw=False)
            warnings = []
        result.ranking, result.bracket = rank(result.scores, result.select)
        for shown in range(1, len(result.bracket)):  # the bracket round by round; the last comes with the winner
            yield self._frame(f"round {shown}", result, verdicts, loaded, [], draw=draw, rounds=shown)
        yield self._frame("done", result, verdicts, loaded, [], draw=draw)

    def _frame(
        self,
        stage: str,
        result: BestOfN,
        verdicts,
        loaded: float,
        warnings: list[str],
        draw: bool,
        rounds: int | None = None,
    ) -> Frame:
        from lab import plots

        p_yes = result.scores.p_yes
        done = stage == "done"
        order = result.ranking if done else range(len(verdicts))
        gallery = [
            (result.images[i], caption(i, p_yes[i], verdicts[i], place if done else None))
            for place, i in enumerate(order)
        ]
        winner, winner_text = None, f"{len(verdicts)} of {result.n} candidates judged"
        if done:
            w = result.winner
            winner = result.images[w]
            winner_text = (
                f"### {WINNER_MARK} Winner: candidate #{w} (seed {result.seeds[w]})\n"
                f"judge P(yes) = {p_yes[w]:.2f} · GenEval-mini {geneval_mark(verdicts[w])} "
                f"{verdicts[w].reason}"
            )
        bracket = curve = None
        if draw and result.bracket:
            bracket = plots.tournament_bracket(result, images=result.images, verdicts=verdicts, rounds=rounds)
        if draw and done:
            curve = plots.best_so_far_curve(*best_so_far(result, verdicts))
        summary = result.to_json() | {
            "stage": stage,
            "verdicts": [{"correct": v.correct, "reason": v.reason} for v in verdicts],
        }
        return Frame(
            stage,
            gallery,
            bracket,
            winner,
            winner_text,
            compute_line(result, loaded),
            curve,
            summary,
            list(order),
            list(warnings),
        )


def _merge(so_far: BestOfN, part: BestOfN) -> BestOfN:
    """Two consecutive shares of one best-of-N (candidates in order) as one."""
    from lab.judge import JudgeScores

    return replace(
        so_far,
        seeds=so_far.seeds + part.seeds,
        images=np.concatenate([so_far.images, part.images]),
        scores=JudgeScores.concat([so_far.scores, part.scores]),
        judge_calls=so_far.judge_calls + part.judge_calls,
        model_calls=so_far.model_calls + part.model_calls,
        seconds={k: so_far.seconds[k] + part.seconds[k] for k in so_far.seconds},
    )


# --- the second tab ----------------------------------------------------------------------------------


def importance_figure(session: DemoSession, name: str, depth: int | None):
    """L's block-importance curve with the blocks kept at `depth` highlighted, or None for a model
    without a ranking."""
    from lab import plots

    table = session.importance(name)
    if table is None:
        return None
    kept = session.kept_blocks(name, depth)
    return plots.block_importance_lines(
        table,
        highlight=kept,
        highlight_label=f"kept at depth {len(kept)}",
        title=f"{name}: block importance, {len(kept)} of {table.num_blocks} blocks kept",
    )


def frontier_note(path: Path = FRONTIER_IMAGE) -> str | None:
    """None when the depth x N frontier figure exists, else how to make it."""
    if path.is_file():
        return None
    return (
        f"No frontier figure yet ({path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}). "
        "Run the scaling notebook (`notebooks/scaling.ipynb`, mode full) to draw the compute-matched "
        "depth x N frontier."
    )
