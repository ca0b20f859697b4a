"""The `lab` command: thin glue over the library. `lab --help` lists the subcommands."""

from __future__ import annotations

import argparse
import sys


def _bench(args: argparse.Namespace) -> None:
    from lab import bench

    bench.run(args.name, args.options)


def _train_vae(args: argparse.Namespace) -> None:
    from lab.config import load_config
    from lab.vae import VAETrainConfig, train_vae

    cfg = load_config(VAETrainConfig, args.config, steps=args.steps, seed=args.seed)
    train_vae(cfg, args.out, resume=not args.restart)


def _train(args: argparse.Namespace) -> None:
    from lab.config import load_config
    from lab.train import TrainConfig, train

    cfg = load_config(TrainConfig, args.config, steps=args.steps, seed=args.seed, init_from=args.init_from,
                      optimizer=args.optimizer)
    print(train(cfg, args.out, resume=not args.restart))


def _generate(args: argparse.Namespace) -> None:
    from lab import plots
    from lab.model import load_pipeline
    from lab.sampling import SamplerConfig, candidate_seeds, generate

    pipe = load_pipeline(args.model)
    seeds = candidate_seeds(args.seed, args.n)
    images = generate(pipe, [args.prompt] * args.n, seeds, SamplerConfig(args.steps, args.cfg), progress=True)
    stamp = {"model": args.model, "prompt": args.prompt, "steps": args.steps, "cfg": args.cfg, "seed": args.seed}
    fig = plots.image_grid(images, captions=[f"seed {s}" for s in seeds], title=args.prompt, stamp=stamp)
    fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out}")


def _world_render(args: argparse.Namespace) -> None:
    from lab import plots, world

    try:
        prompt = world.parse_prompt(args.prompt)
    except ValueError as e:
        raise SystemExit(f"lab world render: {e}") from e
    seeds = list(range(args.seed, args.seed + args.n))
    images = [world.render_prompt(prompt, s) for s in seeds]
    stamp = {"prompt": prompt.text, "seed": args.seed, "n": args.n}
    fig = plots.image_grid(images, captions=[f"seed {s}" for s in seeds], ncols=args.ncols, title=prompt.text, stamp=stamp)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


def _geneval_evaluate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lab import geneval

    try:
        report = geneval.evaluate_samples(args.samples, args.prompts)
    except ValueError as e:
        raise SystemExit(f"lab geneval evaluate: {e}") from e
    print(report.table())
    samples = Path(args.samples)
    out = args.out or samples.parent / f"{samples.stem if samples.suffix == '.npz' else samples.name}.geneval.json"
    geneval.write_report(report, out, samples=str(samples), prompts=args.prompts)
    print(f"wrote {out}")


def _evaluate(args: argparse.Namespace) -> None:
    from lab.evaluation import evaluate_pipeline
    from lab.geneval import save_samples, write_report
    from lab.model import load_pipeline
    from lab.sampling import SamplerConfig

    pipe = load_pipeline(args.model)
    sampler = SamplerConfig(args.steps, args.cfg, args.batch_size)
    report, images = evaluate_pipeline(pipe, args.prompts, args.images_per_prompt, sampler, args.seed)
    print(report.table())
    if args.samples:
        save_samples(images, report.prompt_indices, args.samples)
    if args.out:
        write_report(report, args.out, model=args.model, prompts=args.prompts, images_per_prompt=args.images_per_prompt,
                     steps=args.steps, cfg=args.cfg, seed=args.seed)
        print(f"wrote {args.out}")


def _export(args: argparse.Namespace) -> None:
    from lab.zoo import CHECKPOINTS, export_run

    dest = args.to or CHECKPOINTS / args.name
    scores = export_run(args.run, dest, args.name, args.summary, args.reproduce, tuple(args.prompts),
                        args.images_per_prompt)
    print(f"exported {args.run} to {dest}: " + ", ".join(f"GenEval-mini {k} {v:.3f}" for k, v in scores.items()))


def _grow(args: argparse.Namespace) -> None:
    from lab.growth import grow_pipeline_dir

    try:
        out = grow_pipeline_dir(args.model, args.out, args.num_layers, args.strategy, args.keep,
                                args.zero_init_copies, args.seed)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"lab grow: {e}") from e
    print(f"wrote {out}")


def _prune(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lab import pruning, world
    from lab.config import load_config
    from lab.model import load_pipeline
    from lab.train import TrainConfig, train

    out = Path(args.out)
    try:
        if args.finetune_steps < 0:
            raise ValueError(f"--finetune-steps {args.finetune_steps} must be >= 0")
        cfg = None
        if args.finetune_steps > 0:
            cfg = load_config(TrainConfig, args.finetune_config, init_from=str(out / "pruned"),
                              steps=args.finetune_steps)
        pipe = load_pipeline(args.model)
        pruning.check_method(args.by)
        pruning.check_depth(pruning.num_blocks(pipe.transformer), args.depth)  # before the (long) importance analysis
        table = None
        if args.by == "importance" and args.importance:
            table = pruning.ImportanceTable.load(args.importance)
        elif args.by == "importance":
            table = pruning.block_importance(pipe, world.load_prompts(args.prompts), args.timesteps,
                                             seed=args.seed, source=args.model)
            print(f"wrote {table.save(out / 'importance.json')}")
        keep = pruning.select_blocks(pruning.num_blocks(pipe.transformer), args.depth, args.by, table, args.seed)
        record = {"source": args.model, "by": args.by, "seed": args.seed}
        pruned = pruning.save_pruned(pipe, keep, out / "pruned", record)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"lab prune: {e}") from e
    print(f"wrote {pruned} (kept blocks {keep})")
    if cfg is not None:
        print(f"fine-tuned: {train(cfg, out, resume=not args.restart)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description="The SANA 1.5 lab.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bench", help="run a benchmark and write JSON (lab bench NAME --help)")
    p.add_argument("name", help="benchmark name")
    # everything after NAME (its --help too) belongs to the benchmark's own parser
    p.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's options")
    p.set_defaults(func=_bench)

    p = sub.add_parser("train-vae", help="train the lab's DC-AE on the shapes world")
    p.add_argument("--config", default="configs/vae.yaml", help="YAML of lab.vae.VAETrainConfig fields")
    p.add_argument("--out", required=True, help="run directory; the model lands in OUT/vae")
    p.add_argument("--steps", type=int, help="override the config's steps")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT")
    p.set_defaults(func=_train_vae)

    p = sub.add_parser("train", help="train a SANA transformer with flow matching (resumes from OUT/checkpoint)")
    p.add_argument("--config", default="configs/S.yaml", help="YAML of lab.train.TrainConfig fields")
    p.add_argument("--out", required=True, help="run directory; the pipeline lands in OUT/pipeline")
    p.add_argument("--steps", type=int, help="override the config's steps")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--init-from", help="continue from this SanaPipeline directory (grown or pruned model)")
    p.add_argument("--optimizer", help="override the optimizer: adamw, adamw8bit, came, came8bit")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT")
    p.set_defaults(func=_train)

    p = sub.add_parser("generate", help="generate N candidates for a prompt and save a grid")
    p.add_argument("--model", required=True, help="SanaPipeline directory (lab checkpoint or real SANA 1.5)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--n", type=int, default=16, help="candidates; candidate i uses seed + i")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=4.5, help="classifier-free guidance scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("-o", "--out", default="grid.png")
    p.set_defaults(func=_generate)

    p = sub.add_parser("world", help="the shapes world (lab world render --help)")
    world_sub = p.add_subparsers(dest="world_command", required=True)
    p = world_sub.add_parser("render", help="render N scenes satisfying a prompt and save a grid")
    p.add_argument("--prompt", required=True, help="a prompt in GenEval's templates, e.g. 'a photo of two circles'")
    p.add_argument("--n", type=int, default=8, help="scenes; scene i uses seed + i")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ncols", type=int, default=8, help="images per row")
    p.add_argument("-o", "--out", default="grid.png")
    p.set_defaults(func=_world_render)

    p = sub.add_parser("geneval", help="GenEval-mini, the shapes world's benchmark (lab geneval evaluate --help)")
    geneval_sub = p.add_subparsers(dest="geneval_command", required=True)
    p = geneval_sub.add_parser("evaluate", help="judge generated samples with GenEval's rules; print and write per-task accuracy",
                               description="SAMPLES is a folder of {prompt_index:05d}_{sample:02d}.png files or an .npz "
                               "with 'images' (N, 64, 64, 3) uint8 and 'prompt_index' (N,); lab.geneval.save_samples writes both.")
    p.add_argument("samples", help="folder of PNGs or .npz file")
    p.add_argument("--prompts", default="quick", help="prompt set the indices refer to: quick, full, novel or a .jsonl path")
    p.add_argument("--out", help="JSON to write (default: SAMPLES.geneval.json next to SAMPLES)")
    p.set_defaults(func=_geneval_evaluate)

    p = sub.add_parser("evaluate", help="GenEval-mini of a model: generate for a prompt set and judge")
    p.add_argument("--model", required=True, help="SanaPipeline directory")
    p.add_argument("--prompts", default="full", help="quick, full, novel or a GenEval-style .jsonl")
    p.add_argument("--images-per-prompt", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=4.5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", help="also save the images (.npz or a folder of PNGs)")
    p.add_argument("--out", help="JSON report path")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("export", help="ship a finished run to checkpoints/NAME with GenEval-mini and a model card")
    p.add_argument("run", help="run directory written by lab train")
    p.add_argument("--name", required=True)
    p.add_argument("--to", help="destination (default checkpoints/NAME)")
    p.add_argument("--summary", default="", help="one paragraph for the model card")
    p.add_argument("--reproduce", default="", help="the command that reproduces the run")
    p.add_argument("--prompts", nargs="+", default=["full", "novel"])
    p.add_argument("--images-per-prompt", type=int, default=4, help="GenEval-mini images per prompt (seeds 0..N-1)")
    p.set_defaults(func=_export)

    p = sub.add_parser("grow", help="grow a model's depth (SANA 1.5 model growth); writes a complete SanaPipeline")
    p.add_argument("--model", required=True, help="source SanaPipeline directory (e.g. checkpoints/S)")
    p.add_argument("--num-layers", type=int, required=True, help="blocks of the grown model (> the source's)")
    p.add_argument("--strategy", default="partial_preservation",
                   help="partial_preservation (the paper's), cyclic or block_replication")
    p.add_argument("--keep", type=int, help="source blocks kept (default: all but the last two for partial_preservation)")
    p.add_argument("--zero-init-copies", action="store_true", help="replication strategies: copies start as identity")
    p.add_argument("--seed", type=int, default=0, help="seed of the new blocks' small random weights")
    p.add_argument("--out", required=True, help="directory of the grown pipeline (then: lab train --init-from OUT)")
    p.set_defaults(func=_grow)

    p = sub.add_parser("prune", help="prune a model's depth by block importance (SANA 1.5), then optionally fine-tune",
                       description="Writes OUT/pruned (the pruned SanaPipeline, with pruning.json), OUT/importance.json "
                       "when importance is measured, and with --finetune-steps the recovery run in OUT, its model in "
                       "OUT/pipeline.")
    p.add_argument("--model", required=True, help="source SanaPipeline directory (e.g. checkpoints/L)")
    p.add_argument("--depth", type=int, required=True, help="blocks to keep (1 to the source's blocks - 1)")
    p.add_argument("--by", default="importance", help="importance (the paper's), last, uniform or random")
    p.add_argument("--importance", help="a stored importance table (JSON) instead of measuring one")
    p.add_argument("--prompts", default="quick", help="calibration prompt set: quick, full, novel or a .jsonl")
    p.add_argument("--timesteps", type=int, default=20, help="sampling steps the importance is measured at")
    p.add_argument("--seed", type=int, default=0, help="noise seed of the calibration runs; the draw of --by random")
    p.add_argument("--finetune-steps", type=int, default=0, help="recovery fine-tune steps (the paper: 100); 0 = none")
    p.add_argument("--finetune-config", default="configs/prune_finetune.yaml", help="TrainConfig YAML of the fine-tune")
    p.add_argument("--restart", action="store_true", help="ignore an existing fine-tune checkpoint in OUT")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_prune)

    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
