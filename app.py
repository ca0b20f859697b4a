"""The SANA 1.5 lab app: pick a model, a pruned depth and N; watch the candidates arrive and get
ranked by the judge in a tournament. Layout and wiring only: the logic is `lab.demo`.

    python app.py                                   # S and L from checkpoints/, the lab judge
    python app.py --models S=checkpoints/S big=/path/to/sana --judge /path/to/vlm --port 7860
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from lab import demo  # noqa: E402

QUEUE_MAX = 32  # waiting runs beyond this are refused with "queue full" rather than piling up
HOST, PORT = "127.0.0.1", 7860
GALLERY_COLUMNS = 4  # wide enough thumbnails for their captions
GALLERY_HEIGHT = 440  # CSS pixels: two rows of candidates, then it scrolls
NO_DEPTHS = (1, 2)  # the hidden depth slider's range when no served model prunes on load


def build_demo(session: demo.DemoSession) -> gr.Blocks:
    """The page over a `lab.demo.DemoSession` (its models, judge and defaults)."""
    c = session.config
    prunable = next((m for m in session.model_names if session.depths(m)), None)
    span = session.depths(prunable) if prunable else NO_DEPTHS

    def run(prompt, model, depth, n, steps, cfg, seed, judge, progress=gr.Progress(track_tqdm=True)):
        try:
            progress(0, desc="loading model")
            frames = session.run(prompt, model, depth if session.depths(model) else None, n, steps, cfg, seed, judge)
            files = demo.CandidateFiles()  # images as files written once: see CandidateFiles
            for frame in frames:
                for w in frame.warnings:
                    gr.Warning(w)
                progress(len(frame.summary["verdicts"]) / frame.summary["n"], desc=frame.stage)
                gallery = [(files.path(i, image), text) for i, (image, text) in zip(frame.indices, frame.gallery)]
                winner = None if frame.winner is None else files.path(frame.summary["winner"], frame.winner)
                yield (
                    gallery,
                    frame.bracket,
                    winner,
                    frame.winner_text,
                    frame.compute,
                    frame.best_so_far,
                    frame.summary,
                )
        except demo.DemoError as e:
            raise gr.Error(str(e)) from None
        except Exception as e:  # anything else (out of memory, a broken checkpoint mid-run): a message, not a dead page
            raise gr.Error(f"{type(e).__name__}: {e}") from e

    def on_model(model, depth):
        depths = session.depths(model)
        if depths is None:
            return gr.update(visible=False), importance(model, depth)
        depth = min(max(depth, depths[0]), depths[1])  # each prunable model has its own range
        slider = gr.update(
            visible=True, minimum=depths[0], maximum=depths[1], value=depth, label=f"depth of {model} (blocks kept)"
        )
        return slider, importance(model, depth)

    def importance(model, depth):
        if prunable is None:
            return None
        try:
            return demo.importance_figure(session, model if session.depths(model) else prunable, depth)
        except demo.DemoError as e:
            raise gr.Error(str(e)) from None

    def warn_on_load():
        problem = session.judge_problem()
        if problem:
            gr.Warning(problem)

    with gr.Blocks(title="SANA 1.5 lab: best-of-N") as page:
        gr.Markdown(
            "# SANA 1.5 lab: best-of-N with a judge\nPick a model and depth, a prompt and N. "
            "The candidates arrive as they are generated, the judge scores each one, and a tournament "
            "ranks them. Each caption shows the judge's P(yes) and the exact evaluator's verdict."
        )
        with gr.Tab("Best-of-N"):
            with gr.Row():
                with gr.Column(scale=1):
                    model = gr.Radio(session.model_names, value=session.model_names[0], label="model")
                    depth = gr.Slider(
                        span[0],
                        span[1],
                        value=span[1],
                        step=1,
                        label=f"depth of {prunable} (blocks kept)",
                        visible=bool(session.depths(session.model_names[0])),
                    )
                    prompt = gr.Textbox(label="prompt", value="a photo of two circles", elem_id="prompt")
                    with gr.Row():
                        random_button = gr.Button("random prompt", size="sm")
                        go = gr.Button("generate", variant="primary", elem_id="generate")
                    n = gr.Slider(1, c.max_n, value=c.n, step=1, label="N (candidates)", elem_id="n")
                    with gr.Accordion("sampler and judge", open=False):
                        steps = gr.Slider(1, 50, value=c.steps, step=1, label="steps")
                        cfg = gr.Slider(1, 10, value=c.guidance_scale, step=0.5, label="CFG scale")
                        seed = gr.Number(c.seed, precision=0, label="seed (candidate i uses seed + i)")
                        judge = gr.Dropdown(session.judge_choices, value=session.judge_label, label="judge")
                    with gr.Accordion("example prompts per GenEval task", open=False):
                        for task, texts in demo.example_prompts(c.examples_per_task).items():
                            gr.Examples([[t] for t in texts], inputs=[prompt], label=task)
                with gr.Column(scale=2):
                    winner_text = gr.Markdown(elem_id="winner-text")
                    with gr.Row():
                        winner = gr.Image(
                            label="winner", type="filepath", format="png", height=192, width=192, elem_id="winner"
                        )
                        # show_label=False on every Plot: the figures carry their own titles, which a label covers
                        curve = gr.Plot(label="best-so-far verdict vs N", show_label=False)
                    compute = gr.Markdown(elem_id="compute")
                    gallery = gr.Gallery(
                        label="candidates (judge P(yes), evaluator verdict)",
                        columns=GALLERY_COLUMNS,
                        format="png",
                        height=GALLERY_HEIGHT,
                        elem_id="candidates",
                    )
                    bracket = gr.Plot(label="tournament bracket", show_label=False)
                    with gr.Accordion("result (JSON)", open=False):
                        summary = gr.JSON(label="result")
        with gr.Tab("Depth and compute"):
            gr.Markdown(
                f"Block importance of {prunable}: the depth slider keeps the most important blocks (highlighted)."
            )
            importance_plot = gr.Plot(label="block importance", show_label=False)
            note = demo.frontier_note()
            if note:
                gr.Markdown(note)
            else:
                gr.Image(str(demo.FRONTIER_IMAGE), label="compute-matched depth x N frontier", format="png")

        inputs = [prompt, model, depth, n, steps, cfg, seed, judge]
        outputs = [gallery, bracket, winner, winner_text, compute, curve, summary]
        go.click(run, inputs, outputs, api_name="best_of_n")
        prompt.submit(run, inputs, outputs, api_visibility="private")
        random_button.click(demo.random_prompt, None, prompt, queue=False, api_visibility="private")
        model.change(on_model, [model, depth], [depth, importance_plot], queue=False, api_visibility="private")
        depth.release(importance, [model, depth], importance_plot, queue=False, api_visibility="private")
        page.load(importance, [model, depth], importance_plot, queue=False, api_visibility="private")
        page.load(warn_on_load, None, None, api_visibility="private")
    return page.queue(default_concurrency_limit=1, max_size=QUEUE_MAX)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--models",
        nargs="+",
        metavar="NAME=PATH",
        default=[f"{k}={v}" for k, v in demo.DEFAULT_MODELS.items()],
        help="SanaPipeline directories to serve (one with an importance.json beside it gets a depth slider)",
    )
    p.add_argument("--judge", default=demo.DemoConfig.judge, help="a transformers image-text-to-text model directory")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    p.add_argument("--host", default=HOST)
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument(
        "--preload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="load the first model and the judge before serving (first click is fast)",
    )
    return p.parse_args(argv)


def session_from_args(args: argparse.Namespace) -> demo.DemoSession:
    bad = [m for m in args.models if "=" not in m]
    if bad:
        raise SystemExit(f"--models {bad}: expected NAME=PATH, e.g. S=checkpoints/S")
    models = dict(m.split("=", 1) for m in args.models)
    return demo.DemoSession(demo.DemoConfig(models=models, judge=args.judge, device=args.device))


def main(argv: list[str] | None = None) -> None:
    import torch

    if not torch.cuda.is_available():  # the machine's cores are shared by the queue's one worker
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    args = parse_args(argv)
    session = session_from_args(args)
    if args.preload:
        try:
            session.pipeline(session.model_names[0])
        except demo.DemoError as e:
            print(f"warning: {e}")
        problem = session.judge_problem()
        if problem:
            print(f"warning: {problem}")
    build_demo(session).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
