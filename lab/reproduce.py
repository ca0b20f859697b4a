"""Batch reproduction: every experiment notebook through papermill, in dependency order, skipping
those whose inputs have not changed since their last run (`lab reproduce`).

    reproduce("full", only=["came8bit"])          # reports/came8bit/: executed notebook, figures, metrics
    reproduce("quick", out="runs/reproduce-quick")  # every notebook as a smoke test, never over reports/

Each run leaves `<out>/<name>/reproduce.json` (RECORD) beside the outputs: the inputs it ran with
(notebook digest, parameters, checkpoint digests, code version), its wall time and provenance. A
notebook whose recorded inputs equal the current ones is skipped unless `force`. A new experiment is
one line of REGISTRY: its notebook, module (`lab.experiments.<name>`), presets and checkpoints.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from lab.experiments import MODES, PRESETS_DIR
from lab.provenance import REPO_ROOT, portable, write_json


@dataclass(frozen=True)
class Notebook:
    """One experiment: its notebook, its module and what it needs."""

    name: str  # its folder under reports/, its presets configs/experiments/<name>.yaml
    notebook: str  # the notebook, relative to the repository root (or absolute)
    paper: str  # what of SANA 1.5 it reproduces
    after: tuple[str, ...] = ()  # experiments that run before it
    checkpoints: tuple[str, ...] = ()  # checkpoint directories it reads: digested, and required in full mode
    metrics: str = "metrics.json"  # its metrics JSON inside its folder (the module's METRICS_FILE)
    module: str = ""  # its lab.experiments module: Config, run(cfg, out) -> metrics, figures(metrics)

    @property
    def path(self) -> Path:
        return REPO_ROOT / self.notebook

    @property
    def presets(self) -> Path:
        """Its quick and full presets (read by `lab.experiments.preset`)."""
        return REPO_ROOT / PRESETS_DIR / f"{self.name}.yaml"

    def experiment(self):
        """Its module, imported now (it imports torch: the registry itself stays light)."""
        import importlib

        if not self.module:
            raise ValueError(f"experiment {self.name!r} names no module; expected one of lab.experiments")
        return importlib.import_module(self.module)


REGISTRY = {
    nb.name: nb
    for nb in (
        Notebook("came8bit", "notebooks/came8bit.ipynb", "memory table (§2.3)", module="lab.experiments.came8bit"),
        Notebook(
            "growth",
            "notebooks/growth.ipynb",
            "Fig. 2, init-strategy table (§2.2)",
            (),
            ("checkpoints/S", "checkpoints/L"),
            "growth_metrics.json",
            module="lab.experiments.growth",
        ),
        Notebook(
            "block_importance",
            "notebooks/block_importance.ipynb",
            "Fig. 6",
            (),
            ("checkpoints/L",),
            module="lab.experiments.block_importance",
        ),
        Notebook(
            "pruning",
            "notebooks/pruning.ipynb",
            "Fig. 7, pruning table",
            ("block_importance",),
            ("checkpoints/L", "checkpoints/S"),
            module="lab.experiments.pruning",
        ),
        Notebook(
            "scaling",
            "notebooks/scaling.ipynb",
            "Figs. 8-11 (§4)",
            (),
            ("checkpoints/S", "checkpoints/L", "checkpoints/judge"),
            module="lab.experiments.scaling",
        ),
    )
}

RECORD = "reproduce.json"  # the inputs of a notebook's last successful run, beside its outputs
REPORTS = REPO_ROOT / "reports"  # where full runs go (committed)
QUICK_OUT = REPO_ROOT / "runs" / "reproduce-quick"  # where quick runs go by default: never over reports/
CODE_DIRS = ("lab", "configs")  # the code and presets every notebook runs: their git trees are an input
KERNEL = "python3"
CONTENT_HASH_LIMIT = 64 * 2**20  # bytes: larger checkpoint files are digested by name and size only
READ_CHUNK = 2**20  # bytes read at a time while hashing
GIT_TIMEOUT_S = 30
DIRTY_DIGEST_CHARS = 16  # of the digest of uncommitted changes, in the code version


class ReproduceError(RuntimeError):
    """A notebook failed (or cannot run): the message names it and the failing cell."""


# --- inputs ------------------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(READ_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_digest(directory: str | Path) -> str:
    """sha256 over a checkpoint directory's files (relative name, size and, below
    CONTENT_HASH_LIMIT, contents), or "missing"."""
    root = REPO_ROOT / directory
    if not root.is_dir():
        return "missing"
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        size = f.stat().st_size
        h.update(f"{f.relative_to(root).as_posix()}:{size}:".encode())
        if size <= CONTENT_HASH_LIMIT:
            h.update(file_digest(f).encode())
    return h.hexdigest()


def code_version() -> str:
    """The git trees of CODE_DIRS at HEAD, plus a digest of their uncommitted changes (so editing
    lab/ reruns the notebooks); "unknown" outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=True, timeout=GIT_TIMEOUT_S
        ).stdout.strip()

    try:
        trees = [git("rev-parse", f"HEAD:{d}") for d in CODE_DIRS]
        diff = git("diff", "HEAD", "--", *CODE_DIRS)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return " ".join(trees) + (
        f" +dirty:{hashlib.sha256(diff.encode()).hexdigest()[:DIRTY_DIGEST_CHARS]}" if diff else ""
    )


def parameters(mode: str, folder: Path) -> dict:
    """The papermill parameters of a run writing into `folder`."""
    return {"mode": mode, "out_dir": portable(str(folder))}


def notebook_inputs(nb: Notebook, mode: str, folder: Path, code: str) -> dict:
    """Everything a run depends on: unchanged inputs mean an unchanged result."""
    return {
        "notebook": file_digest(nb.path),
        "parameters": parameters(mode, folder),
        "checkpoints": {c: checkpoint_digest(c) for c in nb.checkpoints},
        "code": code,
    }


def recorded_inputs(folder: Path) -> dict | None:
    """The inputs of the last successful run recorded in `folder`, or None."""
    import json

    record = folder / RECORD
    if not record.is_file() or not (folder / f"{folder.name}.ipynb").is_file():
        return None
    return json.loads(record.read_text()).get("inputs")


# --- plan --------------------------------------------------------------------------------------------


def plan(only: list[str] | None = None) -> list[str]:
    """The selected experiments (all by default) in dependency order (REGISTRY order among equals).
    Raises ValueError naming an unknown experiment."""
    unknown = sorted(set(only or ()) - set(REGISTRY))
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; expected some of {list(REGISTRY)}")
    chosen = set(only or REGISTRY)
    ordered: list[str] = []
    while len(ordered) < len(chosen):
        ready = [
            n
            for n in REGISTRY
            if n in chosen and n not in ordered and all(d in ordered or d not in chosen for d in REGISTRY[n].after)
        ]
        if not ready:
            raise ValueError(f"REGISTRY has a dependency cycle among {sorted(chosen - set(ordered))}")
        ordered.append(ready[0])
    return ordered


def output_root(mode: str, out: str | Path | None) -> Path:
    """Where a batch writes: `out`, else reports/ (full) or QUICK_OUT (quick). Quick runs are
    refused inside reports/ so a smoke test never overwrites a committed result."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    root = Path(out).absolute() if out else (REPORTS if mode == "full" else QUICK_OUT)
    if mode == "quick" and root.resolve().is_relative_to(REPORTS.resolve()):
        raise ValueError(
            f"--out {out}: quick runs are smoke tests and never write under {portable(str(REPORTS))}/; "
            f"choose another folder (default {portable(str(QUICK_OUT))})"
        )
    return root


def check_checkpoints(names: list[str], mode: str) -> None:
    """Full runs need every checkpoint they read (quick runs fall back to tiny stand-ins)."""
    if mode != "full":
        return
    for n in names:
        missing = [c for c in REGISTRY[n].checkpoints if not (REPO_ROOT / c).is_dir()]
        if missing:
            raise ReproduceError(f"{n} reads {', '.join(missing)}, which does not exist; build it first")


# --- execution -----------------------------------------------------------------------------------------


def execute(nb: Notebook, mode: str, folder: str) -> dict:
    """Runs one notebook under papermill into `folder` (its executed copy `<name>.ipynb` appears
    only on success; a failed run leaves `<name>.failed.ipynb`). Returns {"name", "seconds"} or
    {"name", "error"}: a one-line message naming the notebook and the failing cell. Runs in a
    worker process too, so it takes and returns plain (picklable) values."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    name, folder = nb.name, Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD).unlink(missing_ok=True)  # an interrupted run must not look finished
    running, failed = folder / f"{name}.running.ipynb", folder / f"{name}.failed.ipynb"
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(nb.path),
            str(running),
            parameters=parameters(mode, folder),
            cwd=str(REPO_ROOT),
            kernel_name=KERNEL,
            progress_bar=False,
        )
    except PapermillExecutionError as e:
        os.replace(running, failed)
        first_line = next((line for line in e.source.splitlines() if line.strip()), "")
        return {
            "name": name,
            "error": f"notebook {name} failed in cell {e.cell_index} ({first_line.strip()!r}): "
            f"{e.ename}: {' '.join(str(e.evalue).split())}; executed copy: {portable(str(failed))}",
        }
    except Exception as e:  # the kernel died, the notebook is unreadable, ...
        if running.exists():
            os.replace(running, failed)
        return {"name": name, "error": f"notebook {name} did not run: {type(e).__name__}: {' '.join(str(e).split())}"}
    strip_checkout_paths(running)
    os.replace(running, folder / f"{name}.ipynb")
    failed.unlink(missing_ok=True)
    return {"name": name, "seconds": time.perf_counter() - started}


def strip_checkout_paths(notebook: Path) -> None:
    """Rewrites an executed notebook so paths inside the checkout (papermill's input and output
    paths, printed file names) are relative to it: committed notebooks never carry one machine's
    directories."""
    root = str(REPO_ROOT)
    text = notebook.read_text()
    notebook.write_text(text.replace(root + os.sep, "").replace(root, "."))


class _Inline(Executor):
    """An executor that runs each task at once in this process (one worker: no process start-up)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def reproduce(
    mode: str = "full",
    only: list[str] | None = None,
    out: str | Path | None = None,
    force: bool = False,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, str]:
    """Runs the selected notebooks (all by default) in dependency order into `<out>/<name>/`,
    skipping those whose inputs are unchanged since their recorded run unless `force`; `workers` > 1
    runs independent notebooks in parallel processes. Writes `<out>/README.md` (lab.report_index)
    and returns {name: "ran" | "skipped"}. Raises ReproduceError at the first failure, after the
    notebooks already running finish; earlier results stay intact."""
    from tqdm.auto import tqdm

    from lab.report_index import write_index

    if workers < 1:
        raise ValueError(f"workers={workers}; expected an integer >= 1")
    names, root = plan(only), output_root(mode, out)
    check_checkpoints(names, mode)
    code = code_version()
    inputs = {n: notebook_inputs(REGISTRY[n], mode, root / n, code) for n in names}
    status = {n: "skipped" for n in names if not force and recorded_inputs(root / n) == inputs[n]}
    pending = [n for n in names if n not in status]
    bar = tqdm(total=len(names), desc="reproduce", unit="notebook", disable=not progress, initial=len(status))
    running: dict[Future, str] = {}
    error = None
    pool = _Inline() if workers == 1 else ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    with pool:
        while pending or running:
            waiting_on = set(pending) | set(running.values())
            for n in [n for n in pending if not set(REGISTRY[n].after) & waiting_on]:
                if error or len(running) >= workers:
                    break
                bar.set_postfix_str(n)
                pending.remove(n)
                running[pool.submit(execute, REGISTRY[n], mode, str(root / n))] = n
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                n, result = running.pop(future), future.result()
                if "error" in result:
                    error = error or result["error"]
                    pending.clear()
                    continue
                write_json(
                    {
                        "name": n,
                        "notebook": REGISTRY[n].notebook,
                        "inputs": inputs[n],
                        "wall_seconds": round(result["seconds"], 1),
                    },
                    root / n / RECORD,
                )
                status[n] = "ran"
                bar.update(1)
    bar.close()
    write_index(root, mode)
    if error:
        raise ReproduceError(f"{error} (results written before it are intact)")
    return {n: status[n] for n in names}
