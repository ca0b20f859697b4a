"""The `lab` command: thin glue over the library. `lab --help` lists the subcommands.

Every argument is checked while parsing, before anything is loaded; errors print one line,
`lab <command>: error: ...`, naming the bad value and what is accepted, and exit 2 (bad
arguments) or 1 (the command failed); `--debug` shows the traceback instead. Relative paths are
read from the working directory first, then from the repository root (`configs/`, `checkpoints/`);
`--model` also takes a shipped model's name (`S`, `L`, `L@12` = L pruned to 12 blocks).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

USAGE_ERROR, FAILURE = 2, 1  # exit codes: bad arguments, a command that failed
FAILURES = (ValueError, TypeError, OSError, RuntimeError)  # the library's errors: print one line, no traceback


class UsageError(ValueError):
    """An argument found bad after parsing (e.g. against the model it names): exit USAGE_ERROR."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `lab generate: error: argument --n: ...` and exit 2."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


# --- argument types: each checks its value while parsing, so nothing is loaded for a bad one ------


def _at_least(least: float, kind=int):
    """An argument type: a number of `kind` (int or float) >= `least`."""
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}; expected {noun} >= {least:g}") from None
        if not value >= least:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range; expected {noun} >= {least:g}")
        return value

    return parse


def _checked(check, value):
    """`check(value)` with its ValueError reported by argparse as a bad value of the argument."""
    try:
        return check(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _prompt_text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty prompt; expected text such as 'a photo of two red circles'")
    return text


def _world_prompt(text: str):
    from lab import world

    return _checked(world.parse_prompt, text)


def _prompt_set(name: str) -> str:
    """A stored set's name, or a .jsonl path (resolved: working directory, then repository)."""
    from lab import world
    from lab.provenance import repo_path

    value = name if name in world.PROMPT_SETS or not repo_path(name).exists() else str(repo_path(name))
    _checked(world.load_prompts, value)
    return value


def _model(spec: str) -> str:
    """A SanaPipeline directory or a shipped model's name (`S`, `L@12`); checked, not loaded."""
    from lab import zoo

    _checked(zoo.model_spec, spec)
    return spec


def _init_std(text: str) -> float | str:
    """`lab grow --init-std`: a number > 0, or 'default' (lab.growth.DEFAULT_INIT)."""
    if text == "default":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite positive number or 'default'; expected e.g. 0.02")
    return value


def _existing_file(name: str) -> Path:
    from lab.provenance import repo_path

    path = repo_path(name)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{name} does not exist (looked in the working directory and the repository)")
    return path


def _field_value(text: str) -> tuple[str, object]:
    """'FIELD=VALUE' -> (FIELD, VALUE read as YAML: 0.5, true, [S, L])."""
    import yaml

    field, sep, value = text.partition("=")
    if not sep or not field.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=VALUE (e.g. vision_generated_fraction=0.5)")
    try:
        return field.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not YAML ({e.__class__.__name__})") from e


def _existing(name: str) -> Path:
    path = Path(name)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{name} does not exist")
    return path


def _writable_target(name: str) -> Path:
    """An output path whose nearest existing ancestor is a writable directory (missing parents are
    created when the output is written)."""
    path = Path(name)
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {name}: {parent} is not a writable directory")
    return path


def _figure_file(name: str) -> Path:
    """A figure path (`grid.png`) in a format matplotlib writes."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = _writable_target(name)
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix and path.suffix[1:].lower() not in formats:
        raise argparse.ArgumentTypeError(f"cannot write a figure as {path.suffix!r}; expected one of {sorted(formats)}")
    return path


def _save_figure(fig, out: Path, **kwargs) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, **kwargs)
    print(f"wrote {out}")


# --- commands --------------------------------------------------------------------------------------


def _sampler(args: argparse.Namespace):
    """The `lab.sampling.SamplerConfig` of --steps, --cfg and --batch-size; those not given keep
    its defaults (SANA's), which live only there."""
    from lab.sampling import SamplerConfig

    given = {"steps": args.steps, "guidance_scale": args.cfg, "batch_size": getattr(args, "batch_size", None)}
    return SamplerConfig(**{k: v for k, v in given.items() if v is not None})


def _bench(args: argparse.Namespace) -> None:
    from lab import bench

    bench.run(args.name, args.options)


def _train_vae(args: argparse.Namespace) -> None:
    from lab.config import load_config
    from lab.vae import VAETrainConfig, train_vae

    cfg = _usage(load_config, VAETrainConfig, args.config, steps=args.steps, seed=args.seed)
    train_vae(cfg, args.out, resume=not args.restart)


def _usage(fn, *a, **kw):
    """`fn(*a, **kw)` with its ValueError (or refusal of an output path) reported as a bad argument (exit 2)."""
    try:
        return fn(*a, **kw)
    except (ValueError, FileExistsError, NotADirectoryError) as e:
        raise UsageError(str(e)) from e


def _train_judge(args: argparse.Namespace) -> None:
    from lab.config import load_config
    from lab.judge_train import JudgeTrainConfig, train_judge

    overrides = dict(args.set) | {"steps": args.steps, "seed": args.seed}
    cfg = _usage(load_config, JudgeTrainConfig, args.config, **overrides)
    metrics = train_judge(cfg, args.out)
    o = metrics["overall"]
    print(f"held-out pairs: balanced accuracy {o['balanced_accuracy']:.3f}, AUC {o['auc']:.3f} -> {args.out}")


def _pretrain_text_encoder(args: argparse.Namespace) -> None:
    from lab.config import load_config
    from lab.text_encoder import TextEncoderConfig, pretrain_text_encoder

    cfg = _usage(load_config, TextEncoderConfig, args.config)
    metrics = pretrain_text_encoder(cfg, args.out)
    print(", ".join(f"{k} {v:.3f}" for k, v in metrics["heldout"].items()) + f" (held-out captions) -> {args.out}")


def _best_of_n(args: argparse.Namespace) -> None:
    from lab import plots
    from lab.geneval import evaluate_image
    from lab.judge import load_judge
    from lab.scaling import best_of_n
    from lab.zoo import resolve_model

    judge = _usage(load_judge, args.judge)
    sampler = _sampler(args)
    result = best_of_n(resolve_model(args.model), args.prompt, args.n, judge, args.select, args.seed, sampler)
    verdicts = [evaluate_image(x, args.prompt) for x in result.images]
    order = result.ranking
    captions = [f"#{r + 1} P(yes)={result.scores.p_yes[i]:.2f}" for r, i in enumerate(order)]
    fig = plots.image_grid(
        result.images[order],
        captions,
        [verdicts[i] for i in order],
        title=f"{args.prompt!r}: best of {args.n} by {judge.name} ({args.select})",
        stamp={
            "model": args.model,
            "judge": judge.name,
            "seed": args.seed,
            "steps": sampler.steps,
            "cfg": sampler.guidance_scale,
        },
    )
    fig.savefig(args.out)
    w = result.winner
    print(
        f"winner: candidate {w} (seed {result.seeds[w]}), P(yes) {result.scores.p_yes[w]:.3f}, evaluator "
        f"{'pass' if verdicts[w].correct else 'fail'} ({verdicts[w].reason}); {result.judge_calls} judge calls, "
        f"{result.model_calls} model calls -> {args.out}"
    )


def _train(args: argparse.Namespace) -> None:
    import yaml

    from lab.checkpoint import atomic_directory, claim_output_dir
    from lab.config import config_dict, load_config, with_defaults
    from lab.provenance import portable
    from lab.train import RESUME_MAY_CHANGE, TrainConfig, new_blocks, train
    from lab.zoo import model_path

    init = str(model_path(args.init_from)) if args.init_from else None
    cfg = _usage(
        load_config,
        TrainConfig,
        args.config,
        steps=args.steps,
        seed=args.seed,
        init_from=init,
        optimizer=args.optimizer,
    )
    _usage(new_blocks, cfg)  # a scaled lr for grown blocks needs a grown init_from: say so before loading

    # A run directory is the same run when its config matches, aside from what a resume may change
    # (lab.train.RESUME_MAY_CHANGE: steps, checkpoint_every, data_workers; the trainer checks the same).
    # A field the record lacks was added to TrainConfig after the run began: it ran with the default.
    def identity(c: dict | None) -> dict | None:
        return None if c is None else {k: v for k, v in c.items() if k not in RESUME_MAY_CHANGE}

    saved = args.out / "train_config.yaml"
    recorded = identity(with_defaults(TrainConfig, yaml.safe_load(saved.read_text()))) if saved.is_file() else None
    wanted = identity(yaml.safe_load(yaml.safe_dump(portable(config_dict(cfg)))))
    same = _usage(claim_output_dir, args.out, recorded, wanted, args.overwrite)
    if same or not args.out.exists() or not any(args.out.iterdir()):
        print(train(cfg, args.out, resume=same and not args.restart))  # in place: resumable checkpoints
        return
    with atomic_directory(args.out) as tmp:  # --overwrite: the other run stays until this one succeeds
        train(cfg, tmp, resume=False)
    print(args.out / "pipeline")


def _generate(args: argparse.Namespace) -> None:
    from lab import plots
    from lab.sampling import candidate_seeds, generate
    from lab.zoo import resolve_model

    pipe = resolve_model(args.model)
    seeds = candidate_seeds(args.seed, args.n)
    sampler = _sampler(args)
    images = generate(pipe, [args.prompt] * args.n, seeds, sampler, step_progress=True)
    stamp = {
        "model": args.model,
        "prompt": args.prompt,
        "steps": sampler.steps,
        "cfg": sampler.guidance_scale,
        "seed": args.seed,
    }
    fig = plots.image_grid(images, captions=[f"seed {s}" for s in seeds], title=args.prompt, stamp=stamp)
    _save_figure(fig, args.out, dpi=args.dpi)


def _world_render(args: argparse.Namespace) -> None:
    from lab import plots, world

    prompt = args.prompt
    seeds = list(range(args.seed, args.seed + args.n))
    images = [world.render_prompt(prompt, s) for s in seeds]
    stamp = {"prompt": prompt.text, "seed": args.seed, "n": args.n}
    fig = plots.image_grid(
        images, captions=[f"seed {s}" for s in seeds], ncols=args.ncols, title=prompt.text, stamp=stamp
    )
    _save_figure(fig, args.out)


def _geneval_evaluate(args: argparse.Namespace) -> None:
    from lab import geneval

    report = _usage(geneval.evaluate_samples, args.samples, args.prompts)
    print(report.table())
    samples = args.samples
    out = args.out or samples.parent / f"{samples.stem if samples.suffix == '.npz' else samples.name}.geneval.json"
    geneval.write_report(report, out, samples=str(samples), prompts=args.prompts)
    print(f"wrote {out}")


def _geneval_compare(args: argparse.Namespace) -> None:
    from lab import geneval
    from lab.provenance import write_json

    a, b = (_usage(geneval.read_report, r) for r in (args.a, args.b))
    diff = _usage(geneval.compare, a, b)
    lo, hi = diff.overall_interval
    print(f"{args.a} - {args.b}: {diff.overall:+.3f} [{lo:+.3f}, {hi:+.3f}] ({diff.n_images} images paired)")
    for task, value in diff.task.items():
        lo, hi = diff.task_interval[task]
        print(f"  {task:14s} {value:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    if args.out:
        scores = {"a": a.interval().to_json(), "b": b.interval().to_json()}
        write_json({"a": str(args.a), "b": str(args.b), "a_minus_b": diff.to_json(), **scores}, args.out)
        print(f"wrote {args.out}")


def _evaluate(args: argparse.Namespace) -> None:
    from lab.evaluation import evaluate_pipeline
    from lab.geneval import save_samples, write_report
    from lab.zoo import resolve_model

    pipe = resolve_model(args.model)
    sampler = _sampler(args)
    report, images = evaluate_pipeline(pipe, args.prompts, args.images_per_prompt, sampler, args.seed)
    print(report.table())
    if args.samples:
        print(f"wrote {save_samples(images, report.prompt_indices, args.samples, prompt_set=args.prompts)}")
    if args.out:
        write_report(
            report,
            args.out,
            model=args.model,
            prompts=args.prompts,
            images_per_prompt=args.images_per_prompt,
            steps=sampler.steps,
            cfg=sampler.guidance_scale,
            seed=args.seed,
        )
        print(f"wrote {args.out}")


def _export(args: argparse.Namespace) -> None:
    from lab.zoo import CHECKPOINTS, export_run

    dest = args.to or CHECKPOINTS / args.name
    scores = export_run(
        args.run, dest, args.name, args.summary, args.reproduce, tuple(args.prompts), args.images_per_prompt, args.fp16
    )
    print(f"exported {args.run} to {dest}: " + ", ".join(f"GenEval-mini {k} {v:.3f}" for k, v in scores.items()))


def _snapshot(args: argparse.Namespace) -> None:
    import json

    from lab.checkpoint import atomic_directory, claim_output_dir
    from lab.provenance import portable
    from lab.train import checkpoint_pipeline

    record = args.out / SNAPSHOT_RECORD
    wanted = portable({"command": "snapshot", "run": str(args.run.resolve()), "ema": not args.raw})
    recorded = json.loads(record.read_text()) if record.is_file() else None
    if recorded is not None:  # a snapshot of the same run at another step is the same output, refreshed
        recorded = {k: v for k, v in recorded.items() if k != "step"}
    _usage(claim_output_dir, args.out, recorded, wanted, args.overwrite)
    pipe, step = _usage(checkpoint_pipeline, args.run, ema=not args.raw)
    with atomic_directory(args.out) as tmp:
        pipe.save_pretrained(tmp)
        (tmp / SNAPSHOT_RECORD).write_text(json.dumps({**wanted, "step": step}, indent=2) + "\n")
    print(f"wrote {args.out}: {args.run} at step {step} ({'raw' if args.raw else 'EMA'} weights)")


SNAPSHOT_RECORD = "snapshot.json"  # beside a snapshot's pipeline: which run, which step


def _grow(args: argparse.Namespace) -> None:
    import json

    from lab.checkpoint import claim_output_dir
    from lab.growth import GROWTH_FILE, INIT_STD, default_keep, grow_pipeline_dir
    from lab.provenance import portable
    from lab.zoo import model_spec

    spec = model_spec(args.model)
    source = spec.path
    keep = args.keep if args.keep is not None else _usage(default_keep, spec.source_layers, args.strategy)
    # growth.json records the run: the same arguments may redo it, others need --overwrite
    keys = ("source", "num_layers", "strategy", "keep", "zero_init_copies", "seed", "init_std")
    wanted = portable(
        {
            "source": str(source),
            "num_layers": args.num_layers,
            "strategy": args.strategy,
            "keep": keep,
            "zero_init_copies": args.zero_init_copies,
            "seed": args.seed,
            "init_std": args.init_std,
        }
    )
    record = args.out / GROWTH_FILE
    recorded = {k: v for k, v in json.loads(record.read_text()).items() if k in keys} if record.is_file() else None
    if recorded is not None:  # a record from before --init-std existed: those runs used the reference init
        recorded.setdefault("init_std", INIT_STD)
    _usage(claim_output_dir, args.out, recorded, wanted, args.overwrite)
    try:
        out = grow_pipeline_dir(
            source, args.out, args.num_layers, args.strategy, args.keep, args.zero_init_copies, args.seed, args.init_std
        )
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from e
    print(f"wrote {out}")


def _train_log(run: Path) -> Path:
    """The train_log.jsonl of a `lab train` run directory or model (or the log file itself)."""
    log = run / "train_log.jsonl" if run.is_dir() else run
    if not log.is_file():
        raise UsageError(
            f"{run} has no train_log.jsonl; expected a lab train run directory, a model trained by one, or the log file"
        )
    return log


def _steps_to_loss(args: argparse.Namespace) -> None:
    import yaml

    from lab import plots
    from lab.experiments.growth import LOSS_LEVELS, steps_to_loss, steps_to_loss_table
    from lab.provenance import write_json
    from lab.runlog import read_log

    labels = args.labels or [run.name for run in args.runs]
    if len(labels) != len(args.runs) or len(set(labels)) != len(labels):
        raise UsageError(f"--labels {labels}: expected one distinct label per run ({len(args.runs)})")
    curves, runs = {}, {}
    for label, run in zip(labels, args.runs):
        log = _train_log(run)
        curves[label] = [[r["step"], r["loss"]] for r in read_log(log)]
        if not curves[label]:
            raise UsageError(f"{log} is empty: the run has not logged a step yet")
        config = log.parent / "train_config.yaml"
        runs[label] = {
            "log": log,
            "last_step": curves[label][-1][0],
            "config": yaml.safe_load(config.read_text()) if config.is_file() else None,
        }
    levels = sorted(args.levels or LOSS_LEVELS, reverse=True)
    rows = _usage(steps_to_loss, curves, levels, args.window)
    table = steps_to_loss_table(rows, {n: r["last_step"] for n, r in runs.items()})
    print(table, end="")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"runs": runs, "window": args.window, "levels": levels, "rows": rows, "table": table}
    print(f"wrote {write_json(result, args.out / 'steps_to_loss.json')}")
    stamp = {
        "runs": ", ".join(f"{n} ({r['log']}, {r['last_step']} steps)" for n, r in runs.items()),
        "moving average": f"{args.window} steps",
    }
    fig = plots.steps_to_loss(curves, rows, title=args.title, stamp=stamp)
    _save_figure(fig, args.out / "steps_to_loss.png", dpi=150)


def _prune(args: argparse.Namespace) -> None:
    import json

    from lab import pruning, world
    from lab.checkpoint import RUN_RECORD, atomic_directory, claim_output_dir
    from lab.config import load_config
    from lab.sampling import SamplerConfig
    from lab.train import TrainConfig, train
    from lab.zoo import model_spec, resolve_model

    out = args.out
    timesteps = args.timesteps if args.timesteps is not None else SamplerConfig.steps  # the sampler's steps
    _usage(pruning.check_method, args.by)
    _usage(pruning.check_depth, model_spec(args.model).source_layers, args.depth)  # before loading anything
    cfg = None
    if args.finetune_steps > 0:
        cfg = _usage(
            load_config, TrainConfig, args.finetune_config, init_from=str(out / "pruned"), steps=args.finetune_steps
        )
    wanted = {
        "command": "prune",
        "model": args.model,
        "depth": args.depth,
        "by": args.by,
        "seed": args.seed,
        "prompts": args.prompts,
        "timesteps": timesteps,
        "finetune_steps": args.finetune_steps,
        "importance": str(args.importance or ""),
        "finetune_config": str(args.finetune_config),
    }
    recorded = json.loads((out / RUN_RECORD).read_text()) if (out / RUN_RECORD).is_file() else None
    same = _usage(claim_output_dir, out, recorded, wanted, args.overwrite)
    if same and (out / "pruned" / "model_index.json").is_file():
        print(f"{out / 'pruned'} holds this pruning already; reusing it")
    else:  # prune through a temporary directory: `out` is replaced only when the pruned model is complete
        pipe = resolve_model(args.model)
        with atomic_directory(out) as tmp:
            table = None
            if args.by == "importance" and args.importance:
                table = pruning.ImportanceTable.load(args.importance)
            elif args.by == "importance":
                table = pruning.block_importance(
                    pipe, world.load_prompts(args.prompts), timesteps, seed=args.seed, source=args.model, progress=True
                )
                table.save(tmp / "importance.json")
            pruning.prune_pipeline_dir(
                pipe, tmp / "pruned", args.depth, args.by, table, args.seed, {"source": args.model}
            )
            (tmp / RUN_RECORD).write_text(json.dumps(wanted, indent=2) + "\n")
        kept = json.loads((out / "pruned" / pruning.PRUNING_RECORD).read_text())["kept_blocks"]
        print(f"wrote {out / 'pruned'} (kept blocks {kept})")
    if cfg is not None:
        print(f"fine-tuned: {train(cfg, out, resume=not args.restart)}")


def _reproduce(args: argparse.Namespace) -> None:
    from lab.report_index import write_index
    from lab.reproduce import output_root, reproduce

    root = _usage(output_root, args.mode, args.out)
    if args.index_only:
        print(f"wrote {write_index(root, args.mode)}")
        return
    status = reproduce(args.mode, args.only, root, args.force, args.workers)
    print(", ".join(f"{name}: {how}" for name, how in status.items()))


def build_parser() -> argparse.ArgumentParser:
    from lab import bench
    from lab.experiments import MODES
    from lab.reproduce import REGISTRY

    positive, non_negative, guidance = _at_least(1), _at_least(0), _at_least(0.0, float)
    parser = _Parser(
        prog="lab",
        description="The SANA 1.5 lab. Relative paths are read from the working directory, "
        "then the repository; --model also takes a shipped name (S, L, L@12).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(parent, name: str, func, **kwargs) -> argparse.ArgumentParser:
        p = parent.add_parser(name, **kwargs)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        p.set_defaults(func=func, prog=p.prog)
        return p

    def add_sampler_arguments(p: argparse.ArgumentParser) -> None:  # commands that sample
        p.add_argument(
            "--steps", type=positive, help="denoising steps (>= 1; default: SANA's, lab.sampling.SamplerConfig)"
        )
        p.add_argument(
            "--cfg",
            type=guidance,
            help="classifier-free guidance scale (>= 0; <= 1: none; default: SANA's, lab.sampling.SamplerConfig)",
        )

    def add_config_overrides(p: argparse.ArgumentParser) -> None:  # commands that train from a config
        p.add_argument("--steps", type=positive, help="override the config's steps")
        p.add_argument("--seed", type=int, help="override the config's seed")

    names = bench.available()
    p = command(
        sub,
        "bench",
        _bench,
        help=f"run a benchmark and write JSON: {', '.join(names)} (lab bench NAME --help)",
        description=f"Benchmarks: {', '.join(names)}. `lab bench NAME --help` lists a benchmark's options.",
    )
    p.add_argument("name", choices=names, help=f"benchmark name: {', '.join(names)}")
    # everything after NAME (its --help too) belongs to the benchmark's own parser
    p.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's options")

    p = command(sub, "train-vae", _train_vae, help="train the lab's DC-AE on the shapes world")
    p.add_argument(
        "--config", type=_existing_file, default="configs/vae.yaml", help="YAML of lab.vae.VAETrainConfig fields"
    )
    p.add_argument("--out", type=_writable_target, required=True, help="run directory; the model lands in OUT/vae")
    add_config_overrides(p)
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT")

    p = command(sub, "train", _train, help="train a SANA transformer with flow matching (resumes from OUT/checkpoint)")
    p.add_argument(
        "--config", type=_existing_file, default="configs/S.yaml", help="YAML of lab.train.TrainConfig fields"
    )
    p.add_argument(
        "--out",
        type=_writable_target,
        required=True,
        help="run directory; the pipeline lands in OUT/pipeline. The same config (steps aside) resumes; "
        "another run's directory is refused unless --overwrite",
    )
    add_config_overrides(p)
    p.add_argument(
        "--init-from", type=_model, help="continue from this SanaPipeline (grown or pruned model, or a name)"
    )
    p.add_argument("--optimizer", help="override the optimizer: adamw, adamw8bit, came, came8bit")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it holds another run (on success only)")

    p = command(sub, "train-judge", _train_judge, help="train the lab's yes/no VLM judge on evaluator-labelled samples")
    p.add_argument(
        "--config",
        type=_existing_file,
        default="configs/judge.yaml",
        help="YAML of lab.judge_train.JudgeTrainConfig fields",
    )
    p.add_argument(
        "--out", type=_writable_target, required=True, help="judge directory (model + processor), written atomically"
    )
    add_config_overrides(p)
    p.add_argument(
        "--set",
        type=_field_value,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one config field, the value read as YAML (repeatable), e.g. --set vision_generated_fraction=0.5",
    )

    p = command(
        sub,
        "pretrain-text-encoder",
        _pretrain_text_encoder,
        help="pretrain the lab's text encoder on the world's captions (frozen afterwards, as SANA's Gemma-2)",
    )
    p.add_argument(
        "--config", type=_existing_file, default="configs/text_encoder.yaml", help="YAML of TextEncoderConfig fields"
    )
    p.add_argument("--out", type=_writable_target, required=True, help="encoder directory, written atomically")

    p = command(
        sub, "best-of-n", _best_of_n, help="generate N candidates, rank them by a judge's tournament, save a grid"
    )
    p.add_argument("--model", type=_model, required=True, help="SanaPipeline directory or shipped name (S, L, L@12)")
    p.add_argument("--prompt", type=_prompt_text, required=True)
    p.add_argument("--n", type=positive, default=16, help="candidates (1 to lab.scaling.MAX_CANDIDATES)")
    p.add_argument("--judge", default="checkpoints/judge", help="judge directory (any transformers VLM) or 'oracle'")
    p.add_argument("--select", default="tournament", choices=["tournament", "topk", "score"])
    add_sampler_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", type=_figure_file, default="best_of_n.png", help="figure of the ranked candidates")

    p = command(sub, "generate", _generate, help="generate N candidates for a prompt and save a grid")
    p.add_argument(
        "--model",
        type=_model,
        required=True,
        help="SanaPipeline directory or shipped name: S, L, L@12 (L pruned to 12 blocks)",
    )
    p.add_argument("--prompt", type=_prompt_text, required=True)
    p.add_argument("--n", type=positive, default=16, help="candidates (>= 1); candidate i uses seed + i")
    add_sampler_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpi", type=positive, default=100)
    p.add_argument("-o", "--out", type=_figure_file, default="grid.png", help="figure (missing folders are created)")

    p = command(
        sub,
        "reproduce",
        _reproduce,
        help="run every experiment notebook with papermill into reports/ and index them",
        description="Runs the notebooks of lab.reproduce.REGISTRY in dependency order into OUT/NAME (executed "
        "notebook, figures, metrics, reproduce.json), skipping those whose inputs (notebook, parameters, "
        "checkpoints, code) are unchanged since their last run, then writes OUT/README.md. A failing notebook "
        "stops the batch with one line naming it and its cell (exit 1).",
    )
    p.add_argument("--mode", choices=MODES, default="full", help="full: the committed results; quick: a smoke test")
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(REGISTRY),
        metavar="NAME",
        help=f"run only these (in dependency order): {', '.join(REGISTRY)}",
    )
    p.add_argument(
        "--out",
        type=_writable_target,
        help="output folder (default reports/ in full mode, runs/reproduce-quick/ in quick mode)",
    )
    p.add_argument("--force", action="store_true", help="rerun notebooks whose inputs are unchanged")
    p.add_argument("--workers", type=positive, default=1, help="notebooks run at once in separate processes")
    p.add_argument("--index-only", action="store_true", help="only rewrite OUT/README.md from the results there")

    p = sub.add_parser("world", help="the shapes world (lab world render --help)")
    world_sub = p.add_subparsers(dest="world_command", required=True)
    p = command(world_sub, "render", _world_render, help="render N scenes satisfying a prompt and save a grid")
    p.add_argument(
        "--prompt",
        type=_world_prompt,
        required=True,
        help="a prompt of the world, e.g. 'a photo of two red circles', 'a red circle left of a blue square'",
    )
    p.add_argument("--n", type=positive, default=8, help="scenes; scene i uses seed + i")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ncols", type=positive, default=8, help="images per row")
    p.add_argument("-o", "--out", type=_figure_file, default="grid.png", help="figure (missing folders are created)")

    p = sub.add_parser("geneval", help="GenEval-mini, the shapes world's benchmark (lab geneval evaluate --help)")
    geneval_sub = p.add_subparsers(dest="geneval_command", required=True)
    p = command(
        geneval_sub,
        "evaluate",
        _geneval_evaluate,
        help="judge generated samples with GenEval's rules; print and write per-task accuracy",
        description="SAMPLES is a folder of {prompt_index:05d}_{sample:02d}.png files or an .npz "
        "with 'images' (N, 64, 64, 3) uint8 and 'prompt_index' (N,); `lab evaluate --samples S.npz` "
        "(or lab.geneval.save_samples) writes both, and the .npz records its prompt set.",
    )
    p.add_argument("samples", type=_existing, help="folder of PNGs or .npz file")
    p.add_argument(
        "--prompts",
        type=_prompt_set,
        default="quick",
        help="prompt set the indices refer to: quick, full, novel or a .jsonl path",
    )
    p.add_argument("--out", type=_writable_target, help="JSON to write (default: SAMPLES.geneval.json next to SAMPLES)")

    p = command(
        geneval_sub,
        "compare",
        _geneval_compare,
        help="paired difference of two GenEval-mini reports (identical prompts and seeds), with 95%% intervals",
    )
    p.add_argument("a", type=_existing_file, help="report JSON (lab evaluate --out)")
    p.add_argument("b", type=_existing_file, help="report JSON of the same prompts and seeds")
    p.add_argument("--out", type=_writable_target, help="JSON to write: both scores and a - b, overall and per task")

    p = command(sub, "evaluate", _evaluate, help="GenEval-mini of a model: generate for a prompt set and judge")
    p.add_argument("--model", type=_model, required=True, help="SanaPipeline directory or shipped name (S, L, L@12)")
    p.add_argument("--prompts", type=_prompt_set, default="full", help="quick, full, novel or a GenEval-style .jsonl")
    p.add_argument("--images-per-prompt", type=positive, default=4)
    add_sampler_arguments(p)
    p.add_argument(
        "--batch-size", type=positive, help="images per pipeline call (default: lab.sampling.SamplerConfig's)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--samples",
        type=_writable_target,
        help="also save the images (.npz, read by `lab geneval evaluate`, or a folder of PNGs)",
    )
    p.add_argument("--out", type=_writable_target, help="JSON report path")

    p = command(
        sub, "export", _export, help="ship a finished run to checkpoints/NAME with GenEval-mini and a model card"
    )
    p.add_argument("run", type=_existing, help="run directory written by lab train")
    p.add_argument("--name", required=True)
    p.add_argument("--to", type=_writable_target, help="destination (default checkpoints/NAME)")
    p.add_argument("--summary", default="", help="one paragraph for the model card")
    p.add_argument("--reproduce", default="", help="the command that reproduces the run")
    p.add_argument("--prompts", type=_prompt_set, nargs="+", default=["full", "novel"])
    p.add_argument(
        "--images-per-prompt", type=positive, default=4, help="GenEval-mini images per prompt (seeds 0..N-1)"
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        help="ship fp16 weights (half the bytes); scored as shipped, the card says the cost",
    )

    p = command(
        sub,
        "snapshot",
        _snapshot,
        help="the model of a run at its latest checkpoint (e.g. still training) as a SanaPipeline directory",
    )
    p.add_argument("run", type=_existing, help="run directory written by lab train (its --out)")
    p.add_argument("--out", type=_writable_target, required=True, help="SanaPipeline directory to write")
    p.add_argument("--raw", action="store_true", help="the raw weights instead of the EMA ones")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it holds something else")

    p = command(sub, "grow", _grow, help="grow a model's depth (SANA 1.5 model growth); writes a complete SanaPipeline")
    p.add_argument("--model", type=_model, required=True, help="source SanaPipeline directory or name (e.g. S)")
    p.add_argument("--num-layers", type=positive, required=True, help="blocks of the grown model (> the source's)")
    p.add_argument(
        "--strategy",
        default="partial_preservation",
        help="partial_preservation (the paper's), cyclic or block_replication",
    )
    p.add_argument(
        "--keep", type=positive, help="source blocks kept (default: all but the last two for partial_preservation)"
    )
    p.add_argument("--zero-init-copies", action="store_true", help="replication strategies: copies start as identity")
    p.add_argument("--seed", type=int, default=0, help="seed of the new blocks' small random weights")
    p.add_argument(
        "--init-std",
        type=_init_std,
        default=0.02,  # lab.growth.INIT_STD (not imported here: parsing loads no torch)
        help="std of the new blocks' random weights (default 0.02, the reference code's), or 'default': each "
        "layer at PyTorch's default scale, as in a freshly built block",
    )
    p.add_argument(
        "--out",
        type=_writable_target,
        required=True,
        help="directory of the grown pipeline (then: lab train --init-from OUT)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it holds another run (on success only)")

    p = command(
        sub,
        "steps-to-loss",
        _steps_to_loss,
        help="growth's speed-up: the steps each training run needs to reach each loss (e.g. grown L vs L from scratch)",
        description="Reads each run's train_log.jsonl and writes OUT/steps_to_loss.json (per loss level, the first "
        "step at which each run's moving-average loss reaches it, and each run's ratio to the first) and "
        "OUT/steps_to_loss.png (the loss curves and steps-to-loss). Runs with the same seed and batch size see "
        "the same data at every step, so their curves pair step by step.",
    )
    p.add_argument(
        "runs",
        type=_existing,
        nargs="+",
        help="lab train run directories, models trained by one, or logs; the first is the reference of the ratios",
    )
    p.add_argument("--labels", nargs="+", help="one name per run (default: the directory names)")
    p.add_argument(
        "--levels",
        type=_at_least(0.0, float),
        nargs="+",
        help="losses to reach (default: lab.experiments.growth.LOSS_LEVELS)",
    )
    p.add_argument("--window", type=positive, default=20, help="steps in the moving average of the loss (default 20)")
    p.add_argument("--title", help="the figure's title")
    p.add_argument("--out", type=_writable_target, required=True, help="directory to write the JSON and figure into")

    p = command(
        sub,
        "prune",
        _prune,
        help="prune a model's depth by block importance (SANA 1.5), then optionally fine-tune",
        description="Writes OUT/pruned (the pruned SanaPipeline, with pruning.json), OUT/importance.json "
        "when importance is measured and OUT/run.json, all at once through a temporary directory; then, with "
        "--finetune-steps, the recovery run in OUT (resumable), its model in OUT/pipeline.",
    )
    p.add_argument("--model", type=_model, required=True, help="source SanaPipeline directory or name (e.g. L)")
    p.add_argument("--depth", type=positive, required=True, help="blocks to keep (1 to the source's blocks - 1)")
    p.add_argument("--by", default="importance", help="importance (the paper's), last, uniform or random")
    p.add_argument(
        "--importance", type=_existing_file, help="a stored importance table (JSON) instead of measuring one"
    )
    p.add_argument(
        "--prompts", type=_prompt_set, default="quick", help="calibration prompt set: quick, full, novel or a .jsonl"
    )
    p.add_argument(
        "--timesteps",
        type=positive,
        help="sampling steps the importance is measured at (default: the sampler's, lab.sampling.SamplerConfig)",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed of the calibration runs; the draw of --by random")
    p.add_argument(
        "--finetune-steps", type=non_negative, default=0, help="recovery fine-tune steps (the paper: 100); 0 = none"
    )
    p.add_argument(
        "--finetune-config",
        type=_existing_file,
        default="configs/prune_finetune.yaml",
        help="TrainConfig YAML of the fine-tune",
    )
    p.add_argument("--restart", action="store_true", help="ignore an existing fine-tune checkpoint in OUT")
    p.add_argument("--out", type=_writable_target, required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it holds another run (on success only)")

    return parser


def _one_line_warnings(prog: str):
    """warnings.showwarning printing `lab <command>: warning: ...` (the user's input, not a file/line)."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {message}", file=sys.stderr)

    return show


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    if debug:
        args.func(args)
        return
    previous = warnings.showwarning
    warnings.showwarning = _one_line_warnings(args.prog)
    try:
        args.func(args)
    except UsageError as e:
        sys.exit(_report(args.prog, e, USAGE_ERROR))
    except FAILURES as e:
        sys.exit(_report(args.prog, e, FAILURE))
    finally:
        warnings.showwarning = previous


def _report(prog: str, error: BaseException, code: int) -> int:
    """Prints `error` as one line (`--debug` shows the traceback); returns the exit code."""
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{prog}: error: {message} (--debug shows the traceback)", file=sys.stderr)
    return code


if __name__ == "__main__":
    main()
