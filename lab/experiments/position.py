"""Why do the models fail GenEval's position task? A diagnosis from per-image verdicts (issue 17).

    diag = position_diagnosis(geneval.read_report("checkpoints/S/geneval_full.json"))
    print(diagnosis_table(diag))

For every image of a position prompt ("a photo of a A left of a B"), from the objects the evaluator
kept: are both objects there, and when they are, which relation holds between them (GenEval's rule:
strength above `relation_strength` with the 0.1 margin)? The chance level of a relation is how
often it holds between the same two objects in the images drawn for the *other* relations: if the
requested relation holds no more often than that, the model places objects but does not follow the
relation.
"""

from __future__ import annotations

from collections import Counter

from lab import world
from lab.geneval import DEFAULT_EVAL, EvalConfig, Report

UNCLEAR = "unclear"  # both objects present, no relation strong enough


def placement(prompt: world.Prompt, detections, config: EvalConfig = DEFAULT_EVAL) -> tuple[str, set[str]]:
    """(outcome, relations held) of one image: outcome is `both`, `missing A`, `missing B` or
    `missing both` (A is the object the relation is about); relations are those GenEval's rule
    finds between the most confident A and B (empty unless both are there)."""
    b, a = prompt.include[0].cls, prompt.include[1].cls
    best = {}
    for d in sorted(detections, key=lambda d: -d.score):
        best.setdefault(d.shape, d)
    missing = [name for name, cls in (("A", a), ("B", b)) if cls not in best]
    if missing:
        return ("missing both" if len(missing) == 2 else f"missing {missing[0]}"), set()
    strengths = world.relations_between(best[a].box, best[b].box, config.relation_margin)
    return "both", {r for r, s in strengths.items() if s > config.relation_strength}


def position_diagnosis(report: Report, config: EvalConfig = DEFAULT_EVAL) -> dict:
    """Per requested relation: images, how often both objects are present, how often the requested
    relation holds when they are, its chance level, and what relation was found instead.
    Returns {"relations": {relation: {...}}, "overall": {...}}."""
    rows = [
        (p, placement(p, v.detections, config)) for p, v in zip(report.prompts, report.verdicts) if p.task == "position"
    ]
    if not rows:
        raise ValueError("the report has no position prompts; expected a GenEval-mini report of the full or quick set")
    both = [(p.include[1].position[0], held) for p, (outcome, held) in rows if outcome == "both"]
    out = {}
    for rel in world.RELATIONS:
        mine = [(p, o) for p, o in rows if p.include[1].position[0] == rel]
        present = [held for r, held in both if r == rel]
        others = [held for r, held in both if r != rel]
        found = Counter(" and ".join(sorted(h)) if h else UNCLEAR for h in present)
        out[rel] = {
            "images": len(mine),
            "both_present": len(present) / max(len(mine), 1),
            "outcomes": dict(Counter(o[0] for _, o in mine)),
            "holds_given_both": sum(rel in h for h in present) / max(len(present), 1),
            "chance_given_both": sum(rel in h for h in others) / max(len(others), 1),
            "found_given_both": dict(found.most_common()),
        }
    n_both = len(both)
    overall = {
        "images": len(rows),
        "both_present": n_both / len(rows),
        "holds_given_both": sum(r in h for r, h in both) / max(n_both, 1),
        "chance_given_both": sum(out[r]["chance_given_both"] * out[r]["images"] for r in out) / len(rows),
    }
    return {"relations": out, "overall": overall}


def diagnosis_table(diag: dict) -> str:
    """Markdown: one row per requested relation and one overall."""
    lines = [
        "| requested | images | both objects present | relation holds (both present) | chance | most often found instead |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for rel, r in diag["relations"].items():
        instead = next((f"{k} ({v})" for k, v in r["found_given_both"].items() if k != rel), "-")
        lines.append(
            f"| {rel} | {r['images']} | {r['both_present']:.2f} | {r['holds_given_both']:.2f} | "
            f"{r['chance_given_both']:.2f} | {instead} |"
        )
    o = diag["overall"]
    lines.append(
        f"| overall | {o['images']} | {o['both_present']:.2f} | {o['holds_given_both']:.2f} | {o['chance_given_both']:.2f} | |"
    )
    return "\n".join(lines)


def run(models: tuple[str, ...] = ("S", "L"), out: str = "reports/position") -> dict:
    """The diagnosis of each shipped model's card verdicts (`checkpoints/<model>/geneval_full.json`),
    written to `out/diagnosis.json` and `out/README.md`. `python -m lab.experiments.position`."""
    from pathlib import Path

    from lab.geneval import read_report
    from lab.provenance import repo_path, write_json

    result = {m: position_diagnosis(read_report(repo_path(f"checkpoints/{m}/geneval_full.json"))) for m in models}
    out = repo_path(out)
    write_json(
        {"source": "checkpoints/<model>/geneval_full.json (4 images per prompt, seeds 0..)", "models": result},
        out / "diagnosis.json",
    )
    text = [
        "# Position: both objects there? relation at chance?\n",
        "From the shipped cards' per-image verdicts (GenEval-mini full set, 100 position prompts x 4 images); "
        "`python -m lab.experiments.position`. Chance: how often the requested relation holds between the "
        "same two objects in the images drawn for the other relations.\n",
    ]
    text += [f"## {m}\n\n{diagnosis_table(d)}\n" for m, d in result.items()]
    Path(out / "README.md").write_text("\n".join(text))
    return result


if __name__ == "__main__":
    run()
