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

import functools
import json
from collections import Counter

import numpy as np
import torch

from lab import world
from lab.geneval import DEFAULT_EVAL, EvalConfig, Report, relations_held
from lab.text_encoder import relation_token_similarity

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
    return "both", set(relations_held(best[a].box, best[b].box, config))


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


# --------------------------------------------------------------------------------------------
# Mechanism: does the relation reach the transformer, and does the layout follow it?


def relation_prompts(shapes: tuple[str, str], relation: str) -> str:
    """GenEval's position prompt "a photo of a A <relation> a B" (the training template)."""
    return world.make_prompt("position", shapes, relation=relation).text


def _ink(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, H, W) float "ink": 0 on the white background, 1 on black."""
    return 1.0 - images.astype(np.float64).mean(-1) / 255.0


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


@functools.lru_cache(maxsize=256)  # every model measured compares against the same renders
def world_layout(prompt: str, scenes: int, seed: int = 0) -> np.ndarray:
    """Mean ink of `scenes` world renders of `prompt` (H, W): where the training data puts ink.
    Cached: treat the array as read-only."""
    return _ink(np.stack([world.render_prompt(prompt, seed + i) for i in range(scenes)])).mean(0)


def _relation_samples(pipe, pairs, seeds: int, sampler):
    """Per axis of world.RELATION_AXES: (texts alternating a relation and its opposite over `pairs`, their
    images (len(texts) x seeds, seeds 0..seeds-1 for every prompt), their mean ink maps)."""
    from lab.sampling import candidate_seeds, generate

    out = {}
    for first, second in world.RELATION_AXES:
        texts = [relation_prompts(p, r) for p in pairs for r in (first, second)]
        batch = generate(
            pipe, [t for t in texts for _ in range(seeds)], candidate_seeds(0, seeds) * len(texts), sampler
        )
        layouts = _ink(batch).reshape(len(texts), seeds, *batch.shape[1:3]).mean(1)
        out[f"{first.split()[0]}/{second.split()[0]}"] = (texts, batch, layouts)
    return out


def relation_sensitivity(pipe, pairs=world.SHAPE_PAIRS, seeds: int = 8, sampler=None, scenes: int = 256) -> dict:
    """Does the model place objects as the relation says? For every shape pair and relation, `seeds`
    samples (seeds 0..seeds-1, the same for every prompt; `sampler`: SANA's defaults) are read twice:

    - layout: the mean ink of the samples, relation minus opposite, against the world's
      (`layout_agreement`), per axis;
    - placement: the evaluator's detections (`position_diagnosis` over these images): how often both
      objects are there, and how often the relation holds when they are, against its chance level.

    Returns {"left/right": {"model": r, "world_split_half": r}, "above/below": {...}, "placement":
    position_diagnosis(...)["overall"]}.
    """
    from lab.geneval import evaluate
    from lab.sampling import SamplerConfig

    samples = _relation_samples(pipe, pairs, seeds, sampler or SamplerConfig())
    out = {axis: layout_agreement(layouts, texts, scenes) for axis, (texts, _, layouts) in samples.items()}
    images = np.concatenate([batch for _, batch, _ in samples.values()])
    prompts = [t for texts, _, _ in samples.values() for t in texts for _ in range(seeds)]
    out["placement"] = position_diagnosis(evaluate(images, [world.parse_prompt(t) for t in prompts]))["overall"]
    return out


PREFERENCE_SIGMAS = (0.5, 0.7, 0.9)  # noise levels where the layout of a 64x64 scene is still open
WRONG_CAPTIONS = ("relation", "axis", "shape")  # relation_preference's wrong captions
PREFERENCE_BATCH = 256  # images per transformer call


def relation_preference(pipe, pairs=world.SHAPE_PAIRS, scenes: int = 8, sigmas=PREFERENCE_SIGMAS) -> dict:
    """Does the relation word condition the denoiser? A diffusion-classifier reading: world renders of
    "a A <relation> a B" (seeds 0..scenes-1) are noised to each sigma (same noise for every caption)
    and denoised under the true caption and three wrong ones; the model "prefers" the true caption
    when its flow-matching loss is lower. The wrong captions:

    - "relation": the opposite relation ("right of" for "left of"): the objects' order on the axis;
    - "axis": a relation on the other axis ("above" for "left of"): only whether the objects lie
      side by side or one over the other, no binding of a shape to a side;
    - "shape": B replaced by a third shape, the calibration (high for a model that draws its shapes).

    Returns {"relation": p, "axis": p, "shape": p, "by_sigma": {"0.5": {...}, ...}}: the fraction of
    (scene, sigma) where the true caption wins (0.5: the model ignores what differs).
    """
    from lab.model import encode_text
    from lab.vae import images_to_tensor

    device = pipe._execution_device
    x_axis, y_axis = world.RELATION_AXES
    other_axis = dict(zip(x_axis, y_axis)) | dict(zip(y_axis, x_axis))  # left of <-> above, right of <-> below
    captions = {"true": [], "relation": [], "axis": [], "shape": []}
    images = []
    for first, second in world.RELATION_AXES:
        for a, b in pairs:
            third = next(s for s in world.SHAPES if s not in (a, b))
            for r, opposite in ((first, second), (second, first)):
                text = relation_prompts((a, b), r)
                captions["true"] += [text] * scenes
                captions["relation"] += [relation_prompts((a, b), opposite)] * scenes
                captions["axis"] += [relation_prompts((a, b), other_axis[r])] * scenes
                captions["shape"] += [relation_prompts((a, third), r)] * scenes
                images += [world.render_prompt(text, seed) for seed in range(scenes)]
    with torch.no_grad():
        x0 = pipe.vae.encode(images_to_tensor(np.stack(images)).to(device)).latent * pipe.vae.config.scaling_factor
        encoded = {k: encode_text(pipe.tokenizer, pipe.text_encoder, v) for k, v in captions.items()}
        by_sigma = {}
        for i, sigma in enumerate(sigmas):
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(i)).to(device, x0.dtype)
            noisy = (1 - sigma) * x0 + sigma * noise
            t = torch.full((len(x0),), sigma * 1000.0, device=device)
            losses = {}
            for k, (embeds, mask) in encoded.items():
                v = torch.cat(
                    [
                        pipe.transformer(
                            noisy[j : j + PREFERENCE_BATCH],
                            encoder_hidden_states=embeds[j : j + PREFERENCE_BATCH],
                            encoder_attention_mask=mask[j : j + PREFERENCE_BATCH],
                            timestep=t[j : j + PREFERENCE_BATCH],
                            return_dict=False,
                        )[0]
                        for j in range(0, len(x0), PREFERENCE_BATCH)
                    ]
                )
                losses[k] = ((v.float() - (noise - x0).float()) ** 2).mean((1, 2, 3))
            # a string key: the same after a JSON round trip
            by_sigma[f"{sigma:g}"] = {k: float((losses["true"] < losses[k]).float().mean()) for k in WRONG_CAPTIONS}
    return {k: float(np.mean([v[k] for v in by_sigma.values()])) for k in WRONG_CAPTIONS} | {"by_sigma": by_sigma}


def layout_agreement(layouts: np.ndarray, texts: list[str], scenes: int = 256, seed: int = 0) -> dict:
    """How the difference between the layouts of a relation and its opposite matches the world's.

    Args:
        layouts: (2P, H, W) ink maps for `texts`, which alternate a relation and its opposite
            ("A left of B", "A right of B", ...).
        scenes: world renders per prompt for the world's mean layouts.
    Returns {"model": r, "world_split_half": r}: the pixel correlation of the model's difference
    (relation minus opposite) with the world's, averaged over pairs; near 1 when the model places
    A and B as the relation says, near 0 when the relation does not move the layout. The world's
    split-half correlation (two independent sets of `scenes` renders) is the most the measure can
    show with that many scenes.
    """
    worlds = [np.stack([world_layout(t, scenes, s) for t in texts]) for s in (seed, seed + scenes)]
    diffs = [a[0::2] - a[1::2] for a in (layouts, *worlds)]
    return {
        "model": float(np.mean([_correlation(m, w) for m, w in zip(diffs[0], diffs[1])])),
        "world_split_half": float(np.mean([_correlation(a, b) for a, b in zip(diffs[1], diffs[2])])),
    }


def mechanism(pipe, scenes: int = 256, seeds: int = 8) -> dict:
    """The measures of one pipeline: {"encoder": relation_token_similarity, "preference":
    relation_preference, "layout": relation_sensitivity}."""
    return {
        "encoder": relation_token_similarity(pipe.tokenizer, pipe.text_encoder),
        "preference": relation_preference(pipe),
        "layout": relation_sensitivity(pipe, seeds=seeds, scenes=scenes),
    }


def mechanism_table(rows: dict[str, dict]) -> str:
    """Markdown: one row per model of `mechanism` results (a row without "layout" shows only its encoder)."""
    lines = [
        "| model | encoder cosine, left/right (relation token / last token) | encoder cosine, above/below | "
        "denoiser prefers the true relation / axis / shape | "
        "layout follows left/right, above/below (world ceiling) | both objects present | "
        "relation holds (both present) / chance |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in rows.items():
        enc = [f"{m['encoder'][a]['relation_token']:.3f} / {m['encoder'][a]['last_token']:.3f}" for a in m["encoder"]]
        pref = m.get("preference")
        prefers = " / ".join(f"{pref[k]:.2f}" if k in pref else "-" for k in WRONG_CAPTIONS) if pref else "-"
        lay = m.get("layout")
        if lay is None:
            lines.append(f"| {name} | {enc[0]} | {enc[1]} | {prefers} | - | - | - |")
            continue
        axes = [lay[a] for a in m["encoder"]]
        follows = ", ".join(f"{v['model']:.3f}" for v in axes)
        ceiling = ", ".join(f"{v['world_split_half']:.2f}" for v in axes)
        p = lay["placement"]
        lines.append(
            f"| {name} | {enc[0]} | {enc[1]} | {prefers} | {follows} ({ceiling}) | {p['both_present']:.2f} | "
            f"{p['holds_given_both']:.2f} / {p['chance_given_both']:.2f} |"
        )
    return "\n".join(lines)


def run(
    models: tuple[str, ...] = ("S", "L", "S_v2"),
    runs: tuple[str, ...] = (),
    pipelines: dict[str, str] | None = None,
    out: str = "reports/position",
) -> dict:
    """The diagnosis of each shipped model's card verdicts (`checkpoints/<model>/geneval_full.json`)
    and the mechanism measures of those models, of each training run in `runs` at its latest
    checkpoint (EMA weights; `lab.train.checkpoint_pipeline`), of each of `pipelines` ({label:
    SanaPipeline directory}, e.g. `lab snapshot`s of other runs) and of a fresh untrained S encoder
    (seed 0: the frozen encoder of a run with `train_text_encoder: false`). Written to
    `out/diagnosis.json` and `out/README.md`. `python -m lab.experiments.position`."""
    from pathlib import Path

    from lab.geneval import read_report
    from lab.model import build_pipeline
    from lab.provenance import repo_path, write_json
    from lab.train import checkpoint_pipeline
    from lab.zoo import resolve_model

    result = {m: position_diagnosis(read_report(repo_path(f"checkpoints/{m}/geneval_full.json"))) for m in models}
    measured = {m: mechanism(resolve_model(m)) for m in models}
    for r in runs:
        if (repo_path(r) / "checkpoint").is_dir():
            pipe, step = checkpoint_pipeline(repo_path(r))
            measured[f"{Path(r).name} at step {step} (EMA)"] = mechanism(pipe)
    for label, directory in (pipelines or {}).items():
        measured[label] = mechanism(resolve_model(directory))
    torch.manual_seed(0)  # lab.train builds a fresh model so: this is the frozen encoder of such runs
    fresh = build_pipeline("S")
    measured["fresh S encoder (seed 0)"] = {"encoder": relation_token_similarity(fresh.tokenizer, fresh.text_encoder)}
    out = repo_path(out)
    write_json(
        {
            "source": "checkpoints/<model>/geneval_full.json (4 images per prompt, seeds 0..)",
            "models": result,
            "mechanism": measured,
        },
        out / "diagnosis.json",
    )
    write_report(out)
    return {"diagnosis": result, "mechanism": measured}


def _first_axis_step(arms: dict) -> str:
    """ "; the axis preference from step N (...) for ARMS" naming the arms whose earlier points predate that reading."""
    late = {}
    for arm, pts in arms.items():
        steps = [step for step, m in pts if "axis" in m.get("preference", {})]
        if steps and min(steps) > pts[0][0]:
            late[arm] = min(steps)
    if not late:
        return ""
    words = "; ".join(
        f"{', '.join(a for a in late if late[a] == s)}: from step {s}" for s in sorted(set(late.values()))
    )
    return f"; the axis preference was added to the measures later ({words})"


def write_report(out) -> None:
    """`out/README.md` from what the report folder holds: `diagnosis.json` (`run`) and, when the
    pilot has been drawn, `pilot.json` (`python -m lab.experiments.position pilot-figure`)."""
    from pathlib import Path

    out = Path(out)
    diagnosis = json.loads((out / "diagnosis.json").read_text())
    text = [
        "# Position: both objects there? relation at chance? does the relation reach the model?\n",
        "From the shipped cards' per-image verdicts (GenEval-mini full set, 100 position prompts x 4 images); "
        "`python -m lab.experiments.position`. Chance: how often the requested relation holds between the "
        "same two objects in the images drawn for the other relations.\n",
    ]
    text += [f"## {m}\n\n{diagnosis_table(d)}\n" for m, d in diagnosis["models"].items()]
    text += [
        "## Mechanism\n",
        "Encoder cosine (`relation_token_similarity`): how alike the text encoder's outputs are for "
        '"a photo of a A left of a B" and "... right of ..." (and above/below), at the relation word and '
        "at the last token, mean over the 12 ordered shape pairs; 1.000 means the transformer receives no "
        "difference. Preference (`relation_preference`): world renders of every relation prompt (8 scenes "
        "each) noised to sigma 0.5, 0.7 and 0.9 and denoised under the true caption and under a wrong one: "
        "the opposite relation, a relation on the other axis (above for left of: side by side or one over "
        "the other, no binding of a shape to a side), or a wrong second shape; the share of cases where the "
        "true caption gives the lower flow-matching loss (0.5: the model ignores the difference). Layout and "
        "placement (`relation_sensitivity`) read 8 samples (seeds 0-7, SANA's sampler: 20 steps, CFG 4.5) "
        "of each of the 48 prompts: layout is their mean ink, relation minus opposite, correlated over "
        "pixels with the same difference of 256 world renders per prompt (in brackets the world's own "
        "split-half correlation, the most this can show); placement is the evaluator's verdict on the same "
        "384 images, as in the tables above.\n",
        mechanism_table(diagnosis["mechanism"]) + "\n",
    ]
    if (out / "pilot.json").is_file():
        pilot = json.loads((out / "pilot.json").read_text())
        text += [
            "## Pilot: S on position prompts only\n",
            f"`python -m lab.experiments.position pilot` (every arm trains from `{pilot['config']}`), "
            f"measured every {pilot['measure_every']} steps; the samples read 4 seeds per prompt"
            + _first_axis_step(pilot["arms"])
            + ". ![pilot](encoder_pilot.png)\n",
            mechanism_table({f"{arm}, step {pts[-1][0]}": pts[-1][1] for arm, pts in pilot["arms"].items()}) + "\n",
        ]
    (out / "README.md").write_text("\n".join(text))


# arm -> TrainConfig overrides. Every arm sees the same data, noise and initial weights.
PILOT_ARMS = {
    "frozen encoder": {"train_text_encoder": False},
    "joint encoder": {"train_text_encoder": True},
    "frozen encoder + sincos": {"train_text_encoder": False, "position_embedding": "sincos"},
    # session 9: the encoder pretrained on captions (lab.text_encoder), frozen, as SANA's Gemma-2
    "pretrained encoder + sincos": {
        "text_encoder": "checkpoints/text_encoder",
        "train_text_encoder": False,
        "position_embedding": "sincos",
    },
}
PILOT_CONFIG = "configs/position_pilot.yaml"


def encoder_pilot(
    config: str = PILOT_CONFIG,
    out: str = "runs/position_pilot",
    every: int = 250,
    arms: tuple[str, ...] | None = None,
    scenes: int = 256,
    seeds: int = 4,
) -> dict:
    """Trains the pilot's arms (`PILOT_ARMS`; `arms` picks some, e.g. one per process) from one
    TrainConfig and measures `mechanism` (with `seeds` samples per prompt) every `every` steps of each.

    Returns {arm: [(step, measures), ...]}. Each arm is a resumable `lab train` run directory under
    `out`, and writes its points to `out/<arm>.json` as it goes (so arms may run in parallel
    processes); `pilot_results(out)` gathers them.
    """
    import dataclasses
    from pathlib import Path

    from lab.config import load_config
    from lab.provenance import repo_path, write_json
    from lab.train import TrainCallbacks, TrainConfig, train

    unknown = sorted(set(arms or ()) - set(PILOT_ARMS))
    if unknown:
        raise ValueError(f"unknown pilot arm(s) {unknown}; expected some of {list(PILOT_ARMS)}")
    base = load_config(TrainConfig, repo_path(config))
    out = Path(out)
    results = {}
    for arm in arms or tuple(PILOT_ARMS):
        path = _arm_record(out, arm)
        points = _read_points(path)

        def measure(step, pipe, points=points, arm=arm, path=path):
            points[:] = [p for p in points if p[0] < step] + [(step, mechanism(pipe, scenes, seeds))]
            write_json({"config": str(config), "arm": arm, "overrides": PILOT_ARMS[arm], "points": points}, path)

        cfg = dataclasses.replace(base, **PILOT_ARMS[arm])
        train(cfg, out / _arm_dir(arm), callbacks=TrainCallbacks(evaluate=measure, evaluate_every=every))
        results[arm] = points
    return results


def _arm_dir(arm: str) -> str:
    return arm.replace(" + ", "_").replace(" ", "_")


def _arm_record(out, arm: str):
    """The file where a pilot arm keeps its measured points: `out/<arm>.json`."""
    from pathlib import Path

    return Path(out) / f"{_arm_dir(arm)}.json"


def _read_points(path) -> list:
    """[(step, measures), ...] recorded in an arm's file; [] when there is none yet."""
    return [tuple(p) for p in json.loads(path.read_text())["points"]] if path.is_file() else []


def pilot_results(out: str = "runs/position_pilot") -> dict:
    """{arm: [(step, measures), ...]} of every arm that has measured something under `out`."""
    return {arm: _read_points(_arm_record(out, arm)) for arm in PILOT_ARMS if _arm_record(out, arm).is_file()}


# (label, reading, what it reads when the relation is ignored, y-limits). A reading a point lacks
# (measured before the measure existed) is NaN: a gap in the line.
PILOT_PANELS = (
    ("prefers the true relation", lambda m: m["preference"]["relation"], 0.5, (0.3, 1.0)),
    ("prefers the true axis", lambda m: m["preference"].get("axis", float("nan")), 0.5, (0.3, 1.0)),
    ("prefers the true shape", lambda m: m["preference"]["shape"], 0.5, (0.3, 1.0)),
    ("both objects present", lambda m: m["layout"]["placement"]["both_present"], None, (0.0, 1.0)),
    ("layout follows left/right", lambda m: m["layout"]["left/right"]["model"], 0.0, (-0.5, 1.0)),
    ("layout follows above/below", lambda m: m["layout"]["above/below"]["model"], 0.0, (-0.5, 1.0)),
    ("relation holds (both present)", lambda m: m["layout"]["placement"]["holds_given_both"], None, (0.0, 1.0)),
)


def pilot_figure(results: dict, stamp: dict | None = None):
    """One panel per PILOT_PANELS reading against training step, one line per arm; a dashed line
    where a reading sits when the model ignores the relation."""
    import matplotlib.pyplot as plt

    from lab import plots

    fig, axes = plt.subplots(2, 4, figsize=(13.5, 6.0), layout="constrained", sharex=True)
    for ax in axes.flat[len(PILOT_PANELS) :]:
        ax.set_visible(False)
    for ax, (label, value, ignored, ylim) in zip(axes.flat, PILOT_PANELS):
        runs = {arm: [(step, value(m)) for step, m in points] for arm, points in results.items()}
        reference = {"ignored": ignored} if ignored is not None else None
        plots.metric_vs_steps(runs, ax=ax, ylabel=label, reference=reference)
        ax.set_ylim(*ylim)
    if stamp is not None:
        plots.stamp_figure(fig, stamp)
    return fig


def main(argv: list[str] | None = None) -> None:
    """`python -m lab.experiments.position` writes the diagnosis report; `... pilot [--arm A]` trains
    and measures pilot arms (one process per arm runs them in parallel); `... pilot-figure` draws what
    the arms measured into the report folder."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lab.experiments.position")
    parser.add_argument("what", nargs="?", choices=("report", "pilot", "pilot-figure"), default="report")
    parser.add_argument("--out", default="runs/position_pilot", help="pilot: where the arms train")
    parser.add_argument("--config", default=PILOT_CONFIG, help="pilot: the TrainConfig YAML the arms share")
    parser.add_argument("--every", type=int, default=250, help="pilot: measure every this many steps")
    parser.add_argument(
        "--arm", action="append", choices=list(PILOT_ARMS), help="pilot: train this arm (repeatable; default all)"
    )
    parser.add_argument(
        "--pipeline",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="report: also measure this SanaPipeline directory, shown as LABEL (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.what == "report":
        bad = [p for p in args.pipeline if "=" not in p]
        if bad:
            parser.error(f"--pipeline {bad[0]!r} lacks '='; expected LABEL=DIR")
        run(pipelines=dict(p.rsplit("=", 1) for p in args.pipeline))
        return
    if args.what == "pilot":
        encoder_pilot(args.config, args.out, args.every, tuple(args.arm or ()))
        return
    from lab import plots
    from lab.provenance import repo_path, write_json

    results = pilot_results(args.out)
    if not results:
        parser.error(f"no pilot arm has measured anything under {args.out!r}; run `pilot` first")
    report = repo_path("reports/position")
    write_json({"config": args.config, "measure_every": args.every, "arms": results}, report / "pilot.json")
    stamp = {"config": args.config, "arms": ", ".join(results), "measure_every": args.every}
    plots.save_figures({"encoder_pilot": pilot_figure(results, stamp)}, report)
    write_report(report)


if __name__ == "__main__":
    main()
