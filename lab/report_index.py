"""The reports index: `<reports>/README.md`, one section per experiment of lab.reproduce.REGISTRY with
its figures inline, its headline numbers next to the paper's claims and its provenance, all read
from the experiment's metrics JSON (so the page cannot drift from the results).

    write_index()            # reports/README.md from the committed reports (`lab reproduce --index-only`)

An experiment without a headline function below still gets its figures, files and provenance; one
that has not run yet gets a "not run yet" line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lab.provenance import SMOKE_TEST
from lab.reproduce import RECORD, REGISTRY, REPORTS, Notebook

INDEX = "README.md"
SECONDS_PER_MINUTE = 60
DIGEST_SHOWN = 12  # characters of a checkpoint digest printed
TOP_BLOCKS = 8  # blocks listed in the importance ranking


# --- claims tables -----------------------------------------------------------------------------------


def _verdict(met) -> str:
    if isinstance(met, str):  # a row that is no claim (e.g. an upper bound) says what it is
        return met
    return "not measured" if met is None else ("met" if met else "**not met**")


def claims_table(rows: list[tuple]) -> str:
    """Markdown of (claim, paper, lab target, measured, met) rows; met is True, False or None."""
    lines = ["| claim | paper | lab target | measured | |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {c} | {p} | {t} | {m} | {_verdict(ok)} |" for c, p, t, m, ok in rows]
    return "\n".join(lines) + "\n"


def came8bit_headline(m: dict) -> str:
    """Optimizer-state ratio and loss fidelity against the paper's memory table."""
    from lab.experiments.came8bit import format_memory_table

    mem, fid = m["memory"], m["fidelity"]
    big = mem["target_model"]
    ratios = ", ".join(f"{k} {v:.3f}" for k, v in mem["came8bit_vs_adamw"].items())
    rows = [
        (
            "optimizer state, CAME-8bit / AdamW fp32",
            "about 1/8",
            f"<= {mem['target']} on the {big} shape",
            f"{ratios} (limit {mem['theoretical_limit']:.3f})",
            mem["meets_target"],
        ),
        (
            f"CAME-8bit tracks CAME: mean loss of the last {fid['tail']} of {fid['steps']} steps on {fid['model']}",
            "no loss in quality",
            f"within {fid['target']:.0%}",
            f"{fid['relative_difference']['came8bit_vs_came']:+.2%}",
            fid["meets_target"],
        ),
    ]
    return claims_table(rows) + f"\n```\n{format_memory_table(mem)}\n```\n"


def growth_headline(m: dict) -> str:
    """Steps to from-scratch loss and GenEval-mini gain against the paper's growth claims."""
    from lab.experiments import growth

    steps_shown = next(iter(m["runs"].values()))["geneval"]  # (step, score) pairs: the column heading
    s, steps = m["summary"], steps_shown[-1][0]  # evaluated at the last step, whatever the config's layout
    grown = s["arms"][growth.COMPARISON_ARMS[0]]  # the paper's arm
    reached = grown.get("steps_to_scratch_final_loss")
    frac = grown.get("fraction_of_steps")
    rows = [
        (
            "grown L reaches from-scratch L's final loss",
            "about 60% less training time",
            f"within {s['loss_steps_target']:.0%} of the steps",
            "never" if reached is None else f"step {reached} of {steps} ({frac:.0%})",
            s.get("loss_target_met"),
        ),
        (
            f"grown L beats S on GenEval-mini ({m['config']['eval_prompts']} set) after {steps} steps",
            "the deeper model scores higher",
            f"+{s['geneval_gain_target']}",
            f"{grown['geneval_gain_over_source']:+.3f}",
            s.get("geneval_target_met"),
        ),
    ]
    if "shipped" in m:  # the shipped models' cards; older runs stored paths in source/grown and the scores apart
        sh = m["shipped"]
        grown_score, source_score = sh.get("grown_score", sh["grown"]), sh.get("source_score", sh["source"])
        protocol = sh.get("protocol", f"GenEval-mini full set, images per prompt: {sh.get('images_per_prompt')}")
        rows.append(
            (
                "shipped L vs S",
                "the deeper model scores higher",
                f"+{sh.get('target', growth.GENEVAL_GAIN_TARGET)}",
                f"{grown_score:.3f} vs {source_score:.3f} ({sh['gain']:+.3f}); {protocol}",
                sh["target_met"],
            )
        )
    trajectory = [
        "| arm | GenEval-mini at steps " + " -> ".join(str(step) for step, _ in steps_shown) + " |",
        "| --- | --- |",
    ]
    trajectory += [
        f"| {run['label']} | " + " -> ".join(f"{v:.3f}" for _, v in run["geneval"]) + " |" for run in m["runs"].values()
    ]
    return (
        claims_table(rows) + "\n" + growth.summary_table(m) + "\n" + "\n".join(trajectory) + "\n\n"
        f"S scores {m['source']['geneval']:.3f} on the same prompts and seeds.\n"
    )


def block_importance_headline(m: dict) -> str:
    """Head/middle/tail importance against Fig. 6's shape."""
    e, imp = m["edge_vs_middle"], m["importance"]
    rows = [
        (
            "importance is high at the head and tail, low in the middle",
            "Fig. 6: head and tail blocks matter most",
            "head and tail > middle",
            f"head {e['head']:.4f}, middle {e['middle']:.4f}, tail {e['tail']:.4f} ({e['edge_blocks']} blocks at each end)",
            e["head"] > e["middle"] and e["tail"] > e["middle"],
        )
    ]
    top = ", ".join(f"{b} ({imp['mean'][b]:.4f})" for b in imp["ranking"][:TOP_BLOCKS])
    return (
        claims_table(rows) + f"\nMost important blocks (mean importance): {top}. Measured on {imp['num_prompts']} "
        f"prompts x {len(imp['timesteps'])} timesteps of {m.get('model', imp.get('source'))} in {m['seconds']:.0f} s.\n"
    )


def pruning_headline(m: dict) -> str:
    """The three pruning claims and the full table."""
    from lab.experiments import pruning

    s = m["summary"]
    rows = []
    for stage, margins in s["importance_vs_naive"].items():
        if margins:
            rows.append(
                (
                    f"importance pruning beats the best naive method at every depth, {stage} the fine-tune",
                    "Fig. 7",
                    "margin > 0 at every depth",
                    ", ".join(f"{d}: {v['margin']:+.3f}" for d, v in margins.items()),
                    s["importance_beats_naive"][stage],
                )
            )
    gap = s.get("gap_to_unpruned")
    rows.append(
        (
            f"pruned + fine-tune within {s['gap_target']} of the unpruned model at depth {s.get('moderate_depth')}",
            "about 100 steps recover the quality",
            f"gap <= {s['gap_target']}",
            "not measured" if gap is None else f"gap {gap:+.3f}",
            s.get("within_target"),
        )
    )
    scratch = "; ".join(
        f"depth {d}: {v['pruned']:.3f} vs {v['scratch']:.3f} ({v['margin']:+.3f})"
        for d, v in s.get("scratch", {}).items()
    )
    rows.append(
        (
            "pruned beats the same depth trained from scratch",
            "pruned models beat ones trained from scratch",
            "margin > 0",
            scratch or "not measured",
            s.get("beats_scratch"),
        )
    )
    return claims_table(rows) + "\n" + pruning.summary_table(m)


def scaling_headline(m: dict) -> str:
    """Issue 13's targets per model against the paper's best-of-N gain, and the GenEval-vs-N table."""
    from lab.experiments import scaling

    rows = []
    for model, t in m["targets"].items():
        curve = sorted((r["n"], r["overall"]) for r in m["models"][model]["curves"]["judge"])
        rows.append(
            (
                f"{model}: GenEval-mini rises with N",
                "more candidates keep helping",
                "monotone in N",
                " -> ".join(f"{v:.3f}" for _, v in curve)
                + f" (N = {', '.join(str(n) for n, _ in curve)}; learned judge)",
                t["monotone_in_n"],
            )
        )
        if "gain_at_16" in t:
            rows.append(
                (
                    f"{model}: gain of best-of-16 over N = 1",
                    "0.72 -> 0.80",
                    f">= +{scaling.TARGETS['gain_at_16']}",
                    f"{t['gain_at_16']:+.3f}",
                    t["gain_target_met"],
                )
            )
        oracle = {r["n"]: r["overall"] for r in m["models"][model]["curves"]["oracle"]}
        if 16 in oracle and 1 in oracle:
            rows.append(
                (
                    f"{model}: headroom, best-of-16 by the oracle (the evaluator itself; an upper bound)",
                    "0.81 -> 0.96 with 2,048 candidates (4.8B, NVILA judge)",
                    "-",
                    f"{oracle[1]:.3f} -> {oracle[16]:.3f}",
                    "upper bound",
                )
            )
        if "best_of_16_target_met" in t:
            rows.append(
                (
                    f"{model}: best-of-16 by the learned judge",
                    "0.80",
                    f">= {scaling.TARGETS['best_of_16_L']}",
                    f"{t['best_of_16']:.3f}",
                    t["best_of_16_target_met"],
                )
            )
    from lab.bench.judge import TARGETS as JUDGE

    for split, r in m["reliability"].items():
        o = r["overall"]
        worst = min(r["tasks"].items(), key=lambda kv: kv[1]["balanced_accuracy"])
        rows.append(
            (
                f"judge vs evaluator, {split} samples ({o['n']} images)",
                "NVILA-2B verifier (no figure given)",
                f"balanced accuracy >= {JUDGE['balanced_accuracy']}, every task >= {JUDGE['task_balanced_accuracy']}, "
                f"AUC >= {JUDGE['auc']}",
                f"{o['balanced_accuracy']:.3f} (worst: {worst[0]} {worst[1]['balanced_accuracy']:.3f}), AUC {o['auc']:.3f}",
                o["balanced_accuracy"] >= JUDGE["balanced_accuracy"]
                and o["auc"] >= JUDGE["auc"]
                and worst[1]["balanced_accuracy"] >= JUDGE["task_balanced_accuracy"],
            )
        )
    return claims_table(rows) + "\n" + scaling.summary_table(m) + "\n\n" + scaling.reliability_table(m) + "\n"


HEADLINES = {
    "came8bit": came8bit_headline,
    "growth": growth_headline,
    "block_importance": block_importance_headline,
    "pruning": pruning_headline,
    "scaling": scaling_headline,
}


# --- sections ----------------------------------------------------------------------------------------


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def provenance_lines(nb: Notebook, metrics: dict, record: dict | None) -> list[str]:
    """Commit, parameters, checkpoints, wall time and machine of an experiment's last run."""
    p = metrics.get("provenance", {})
    if record:
        params = ", ".join(f"{k}={v!r}" for k, v in record["inputs"]["parameters"].items())
        checkpoints = ", ".join(f"`{c}` ({d[:DIGEST_SHOWN]})" for c, d in record["inputs"]["checkpoints"].items())
        wall = f"{record['wall_seconds'] / SECONDS_PER_MINUTE:.1f} min (`lab reproduce`)"
    else:
        params = f"mode={metrics.get('mode')!r} (run by hand with papermill; no {RECORD})"
        checkpoints = ", ".join(f"`{c}`" for c in nb.checkpoints)
        wall = "not recorded (run before `lab reproduce`)"
    machine = (
        f"{p.get('device', '?')}, {p.get('cpu_count', '?')} cores, {p.get('cpu_threads', '?')} torch threads; "
        f"torch {p.get('torch', '?')}, python {p.get('python', '?')}"
    )
    return [
        f"- commit: `{p.get('commit', 'unknown')}` ({p.get('time_utc', 'time unknown')})",
        f"- parameters: {params}",
        f"- checkpoints: {checkpoints or 'none'}",
        f"- wall time: {wall}",
        f"- machine: {machine}",
    ]


def section(nb: Notebook, root: Path) -> str:
    """The markdown section of one experiment under `root` ("not run yet" when it has no metrics)."""
    folder = root / nb.name
    link = Path(os.path.relpath(nb.path, root)).as_posix()
    head = f"## {nb.name}\n\nPaper: {nb.paper}. Notebook: [`{nb.notebook}`]({link})"
    metrics = _load(folder / nb.metrics)
    if metrics is None:
        return f"{head}\n\nNot run yet: no `{nb.name}/{nb.metrics}`. Run `lab reproduce --only {nb.name}`.\n"
    executed = folder / f"{nb.name}.ipynb"
    files = [
        f"[metrics]({nb.name}/{nb.metrics})",
        f"[executed notebook]({nb.name}/{executed.name})" if executed.is_file() else "executed notebook: not committed",
    ]
    out = [f"{head}; {', '.join(files)}.", ""]
    if metrics.get("mode") == "quick":
        out += [f"**Quick mode: {SMOKE_TEST}.**", ""]
    if nb.name in HEADLINES:
        try:
            out.append(HEADLINES[nb.name](metrics))
        except (KeyError, TypeError, IndexError, ValueError) as e:
            out.append(f"Headline numbers unavailable ({type(e).__name__}: {e}).\n")
    out += [f"![{png.stem}]({nb.name}/{png.name})\n" for png in sorted(folder.glob("*.png"))]
    out += ["Provenance:", ""] + provenance_lines(nb, metrics, _load(folder / RECORD))
    return "\n".join(out) + "\n"


def run_mode(folder: Path, metrics: dict) -> str:
    """The mode a result was run in: from its metrics, else from the `lab reproduce` record beside it."""
    if "mode" in metrics:
        return metrics["mode"]
    record = _load(folder / RECORD) or {}
    return record.get("inputs", {}).get("parameters", {}).get("mode", "?")


def index_markdown(root: Path = REPORTS, mode: str = "full") -> str:
    """The whole index page for the experiments under `root`."""
    intro = [
        "# Reports",
        "",
        "Written by `lab reproduce` (`lab.report_index`) from each experiment's metrics JSON: do not edit by hand; "
        "`lab reproduce --index-only` rewrites it. Benchmarks (`lab bench`) write their JSON under `bench/`.",
        "",
    ]
    if mode == "quick":
        intro += [f"**Quick mode: {SMOKE_TEST}.**", ""]
    toc = ["| experiment | paper | status |", "| --- | --- | --- |"]
    for nb in REGISTRY.values():
        metrics = _load(root / nb.name / nb.metrics)
        status = (
            "not run yet"
            if metrics is None
            else f"{run_mode(root / nb.name, metrics)} run, commit `{metrics.get('provenance', {}).get('commit', 'unknown')}`"
        )
        toc.append(f"| [{nb.name}](#{nb.name}) | {nb.paper} | {status} |")
    return "\n".join(intro + toc) + "\n\n" + "\n".join(section(nb, root) for nb in REGISTRY.values())


def write_index(root: str | Path = REPORTS, mode: str = "full") -> Path:
    """Writes `<root>/README.md` (index_markdown) and returns its path."""
    path = Path(root) / INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(index_markdown(Path(root), mode))
    return path
