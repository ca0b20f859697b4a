"""Every picture the lab draws: notebooks, the app and the batch report call these functions.

Functions take data (and an optional `ax` where one panel makes sense), return a matplotlib
Figure, and never show it: they build figures with `matplotlib.figure.Figure`, not pyplot, so
they work on any backend (Agg included) and in threads. Save with `fig.savefig(path)`;
in a notebook a returned Figure displays itself.

    fig = image_grid(images, captions=[p.text for p in prompts], verdicts=report.verdicts,
                     stamp={"checkpoint": "S", "steps": 20})
    fig.savefig("grid.png")
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib
import matplotlib.layout_engine
import matplotlib.patches
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# The house style: one place for sizes and fonts, applied to every figure made here.
STYLE = {
    "font.family": "DejaVu Sans",  # has the check and cross marks
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 12,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "image.interpolation": "nearest",  # 64x64 images: show pixels, do not smooth them
}
CORRECT_COLOR = "#1a9641"  # green
WRONG_COLOR = "#d7191c"  # red
STAMP_COLOR = "#777777"
FRAME_COLOR = "#cccccc"
MARKS = {True: "\u2713", False: "\u2717"}  # check mark, ballot x
# Placement, in axes fractions (0..1 across an image) and points (line widths).
MARK_XY = (0.97, 0.97)  # the verdict mark's top-right corner
CAPTION_Y = -0.02  # the caption's top, just under the image
VERDICT_FRAME_LW, PLAIN_FRAME_LW = 2.5, 0.8
STAMP_XY = (0.005, 0.002)  # the footer's bottom-left corner, in figure fractions
SMOKE_TEST_XY, SMOKE_TEST_COLOR, SMOKE_TEST_SCALE = (0.995, 0.998), "#d62728", 1.5  # quick runs' mark: top right, red
POINTS_PER_INCH = 72
CHAR_WIDTH_EM = 0.55  # average glyph width of the footer font, in ems (for wrapping it)


def save_figures(figures: dict[str, Figure], folder) -> list:
    """Saves each figure of `figures` ({name: Figure}, as an experiment's `figures()` returns) as
    `folder/<name>.png` (the folder is created). Returns the paths."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        fig.savefig(folder / f"{name}.png")
        paths.append(folder / f"{name}.png")
    return paths


def use_style() -> None:
    """Makes the house style the default for figures made elsewhere too (e.g. pyplot in a notebook)."""
    matplotlib.rcParams.update(STYLE)


def image_grid(
    images,
    captions: Sequence[str] | None = None,
    verdicts: Sequence | None = None,
    ncols: int = 8,
    title: str | None = None,
    stamp: dict | None = None,
    panel_inches: float = 1.4,
    caption_chars: int = 22,
    caption_line_inches: float = 0.14,
    title_inches: float = 0.35,
) -> Figure:
    """Images in a grid, each with an optional caption and a green check / red cross per verdict.

    Args:
        images: (N, H, W, 3) or a list of (H, W, 3) arrays, uint8 or float in [0, 1] (or PIL images).
        captions: N strings shown under the images (wrapped at `caption_chars` characters).
        verdicts: N booleans, objects with a `.correct` attribute (geneval.Verdict), or None (no mark).
        ncols: images per row. panel_inches: width of one image; caption_line_inches, title_inches:
            the height of a caption line and of the title (inches).
        title: figure title. stamp: provenance for the footer (see `stamp_figure`).
    Returns:
        the Figure.
    """
    images = [_to_display(x) for x in images]
    n = len(images)
    if n == 0:
        raise ValueError("image_grid got no images; expected at least one")
    for name, seq in (("captions", captions), ("verdicts", verdicts)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{len(seq)} {name} for {n} images; expected one per image")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    caption_lines = max((len(textwrap.wrap(c, caption_chars)) for c in captions), default=0) if captions else 0
    row_inches = panel_inches + caption_lines * caption_line_inches
    with matplotlib.rc_context(STYLE):
        fig = Figure(
            figsize=(ncols * panel_inches, nrows * row_inches + (title_inches if title else 0)), layout="constrained"
        )
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if i >= n:
                continue
            ax.imshow(images[i])
            if captions is not None:
                ax.set_title(
                    "\n".join(textwrap.wrap(captions[i], caption_chars)), fontsize="small", y=CAPTION_Y, va="top", pad=0
                )
            verdict = None if verdicts is None else verdicts[i]
            if verdict is not None:
                _mark(ax, bool(getattr(verdict, "correct", verdict)))
            else:  # the world's background is white: a thin frame shows where each image ends
                _frame(ax, FRAME_COLOR, PLAIN_FRAME_LW)
        if title:
            fig.suptitle(title)
        if stamp is not None:
            stamp_figure(fig, stamp)
    return fig


def _mark(ax: Axes, correct: bool) -> None:
    """A check or cross in the image's top-right corner, and a frame, in green or red."""
    color = CORRECT_COLOR if correct else WRONG_COLOR
    ax.text(
        *MARK_XY,
        MARKS[correct],
        transform=ax.transAxes,
        ha="right",
        va="top",
        color="white",
        fontsize="large",
        fontweight="bold",
        bbox={"boxstyle": "round,pad=0.15", "fc": color, "ec": "none"},
    )
    _frame(ax, color, VERDICT_FRAME_LW)


def _frame(ax: Axes, color: str, lw: float) -> None:
    ax.add_patch(
        matplotlib.patches.Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec=color, lw=lw, clip_on=False)
    )


def _to_display(image) -> np.ndarray:
    """(H, W, 3) uint8 or float array in [0, 1] for imshow; floats are clipped."""
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise ValueError(f"image of shape {a.shape}; expected (H, W, 3) RGB, channels last")
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(a, 0, 1)
    raise ValueError(f"image of dtype {a.dtype}; expected uint8 or float in [0, 1]")


def stamp_figure(fig: Figure, stamp: dict, fontsize: float = 6.5, footer_inches: float = 0.15) -> Figure:
    """Writes a footer line saying what produced the figure: `key=value` for each stamp entry,
    and the lab's git commit (`lab.provenance.git_commit()`) unless the stamp names one; a stamp
    with `mode="quick"` also marks the figure "smoke test — not a result" at its top right.
    Figures with constrained layout keep a `footer_inches` band free for it.

    Returns `fig`, stamped.
    """
    from lab.provenance import SMOKE_TEST, git_commit

    entries = dict(stamp)
    if entries.get("mode") == "quick":
        fig.text(
            *SMOKE_TEST_XY,
            SMOKE_TEST,
            ha="right",
            va="top",
            fontsize=fontsize * SMOKE_TEST_SCALE,
            color=SMOKE_TEST_COLOR,
            fontweight="bold",
        )
    entries.setdefault("commit", git_commit())
    text = "  \u00b7  ".join(f"{k}={v}" for k, v in entries.items())
    # wrap to the figure's width so narrow figures keep every entry (the commit comes last)
    chars_per_line = max(1, int(fig.get_figwidth() * POINTS_PER_INCH / (fontsize * CHAR_WIDTH_EM)))
    lines = textwrap.wrap(text, chars_per_line)
    engine = fig.get_layout_engine()
    if isinstance(engine, matplotlib.layout_engine.ConstrainedLayoutEngine):
        band = footer_inches * len(lines) / fig.get_figheight()
        engine.set(rect=(0, band, 1, 1 - band))
    fig.text(*STAMP_XY, "\n".join(lines), ha="left", va="bottom", fontsize=fontsize, color=STAMP_COLOR)
    return fig


# --- block importance and depth pruning (lab.pruning; SANA 1.5 Fig. 6-7) ---------------------------
METHOD_COLORS = {"importance": "#1f77b4", "last": "#d62728", "uniform": "#ff7f0e", "random": "#7f7f7f"}
TIMESTEP_CMAP = "viridis"  # one colour per denoising timestep
HEATMAP_CMAP = "magma"
MEAN_LW, STEP_LW = 2.5, 0.9  # line widths (points): the mean over timesteps vs one timestep
PANEL_SIZE = (6.0, 3.4)  # inches, one analysis panel
HIGHLIGHT_COLOR = "#2ca02c"  # blocks kept at a pruned depth
HIGHLIGHT_ALPHA = 0.15  # opacity of their shaded bands
HIGHLIGHT_HALF_WIDTH = 0.4  # half a band's width, in blocks
HIGHLIGHT_MS = 7  # marker size (points) of a kept block on the mean


def _axes_or_new(ax: Axes | None, size: tuple[float, float] = PANEL_SIZE) -> tuple[Figure, Axes]:
    """`ax` and its figure, or a new constrained-layout Figure with one Axes."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots()


def _block_ticks(num_blocks: int, most: int = 32) -> np.ndarray:
    """Integer block indices to label: all of them, or every k-th when there are more than `most`."""
    return np.arange(num_blocks)[:: max(1, -(-num_blocks // most))]


def block_importance_lines(
    table,
    ax: Axes | None = None,
    title: str | None = None,
    stamp: dict | None = None,
    highlight: Sequence[int] | None = None,
    highlight_label: str = "kept",
) -> Figure:
    """Importance vs block index: a thin line per timestep (coloured by t) and the mean in black.

    Args:
        table: a `lab.pruning.ImportanceTable` (values (blocks, timesteps), timesteps, mean).
        title: axes title. stamp: provenance for the footer (see `stamp_figure`).
        highlight: block indices to shade and mark on the mean (e.g. the blocks a pruned depth
            keeps), labelled `highlight_label` in the legend.
    Returns:
        the Figure.
    """
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes_or_new(ax)
        blocks = np.arange(table.num_blocks)
        cmap = matplotlib.colormaps[TIMESTEP_CMAP]
        t = np.asarray(table.timesteps, dtype=float)
        span = max(t.max() - t.min(), 1e-9)
        for j in range(table.num_timesteps):
            ax.plot(blocks, table.values[:, j], color=cmap((t[j] - t.min()) / span), lw=STEP_LW, alpha=0.8)
        ax.plot(blocks, table.mean, color="black", lw=MEAN_LW, marker="o", ms=3, label="mean over timesteps")
        if highlight is not None:
            kept = sorted(int(i) for i in highlight)
            for i in kept:
                ax.axvspan(
                    i - HIGHLIGHT_HALF_WIDTH,
                    i + HIGHLIGHT_HALF_WIDTH,
                    color=HIGHLIGHT_COLOR,
                    alpha=HIGHLIGHT_ALPHA,
                    lw=0,
                )
            ax.plot(
                kept,
                table.mean[kept],
                ls="none",
                marker="o",
                ms=HIGHLIGHT_MS,
                color=HIGHLIGHT_COLOR,
                label=f"{highlight_label} ({len(kept)} of {table.num_blocks})",
            )
        sm = matplotlib.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.Normalize(t.min(), t.max()))
        fig.colorbar(sm, ax=ax, label="timestep t (1000 = pure noise)")
        ax.set_xlabel("block index")
        ax.set_ylabel("importance 1 - cos(h_in, h_out)")
        ax.set_xticks(_block_ticks(table.num_blocks))
        ax.legend(loc="upper center")
        ax.set_title(title or f"block importance ({table.num_prompts} prompts, {table.num_timesteps} timesteps)")
        if stamp is not None:
            stamp_figure(fig, stamp)
    return fig


def block_importance_panels(
    tables: dict,
    highlights: dict | None = None,
    highlight_label: str = "kept",
    log_scale: bool = False,
    columns: int = 2,
    stamp: dict | None = None,
) -> Figure:
    """`block_importance_lines`, one panel per model (titled by its key in `tables`), `columns` to a
    row, sharing the y-axis; `highlights` maps a key to the block indices to mark. `log_scale`: a log
    y-axis, for importances that span orders of magnitude (e.g. new blocks against trained ones)."""
    highlights = highlights or {}
    rows = -(-len(tables) // columns)
    cols = min(columns, len(tables))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(cols * PANEL_SIZE[0], rows * PANEL_SIZE[1]), layout="constrained")
        axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False).ravel())
    for ax, (name, table) in zip(axes, tables.items()):
        block_importance_lines(
            table, ax=ax, title=name, highlight=highlights.get(name), highlight_label=highlight_label
        )
        if log_scale:
            ax.set_yscale("log")
    for ax in axes[len(tables) :]:
        ax.set_visible(False)
    if stamp is not None:
        stamp_figure(fig, stamp)
    return fig


def importance_heatmap(table, ax: Axes | None = None, title: str | None = None, stamp: dict | None = None) -> Figure:
    """Blocks x timesteps heatmap of importance; columns in sampling order (noisiest first).

    Args: table: a `lab.pruning.ImportanceTable`. Returns: the Figure.
    """
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes_or_new(ax)
        im = ax.imshow(table.values, aspect="auto", cmap=HEATMAP_CMAP, origin="upper")
        ax.grid(False)
        fig.colorbar(im, ax=ax, label="importance 1 - cos")
        ticks = np.arange(table.num_timesteps)[:: max(1, table.num_timesteps // 10)]
        ax.set_xticks(ticks, [f"{table.timesteps[j]:.0f}" for j in ticks])
        ax.set_yticks(_block_ticks(table.num_blocks))
        ax.set_xlabel("timestep t (sampling order)")
        ax.set_ylabel("block index")
        ax.set_title(title or "block importance per timestep")
        if stamp is not None:
            stamp_figure(fig, stamp)
    return fig


def block_similarity_curve(
    similarity,
    reference=None,
    title: str | None = None,
    ylim: tuple | None = None,
    ax: Axes | None = None,
    size: tuple[float, float] = PANEL_SIZE,
) -> Figure:
    """Per-block cosine similarity of input and output (1 = the block changes nothing).

    Args:
        similarity: (num_blocks,) cos(h_in, h_out) of one prompt at one timestep.
        reference: optional (num_blocks,) similarity to compare with (e.g. 1 - the calibration mean),
            drawn dashed. ylim: fixed y range (keeps the axis still while a slider moves).
    Returns: the Figure.
    """
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes_or_new(ax, size)
        blocks = np.arange(len(similarity))
        ax.plot(blocks, similarity, marker="o", ms=3, color=METHOD_COLORS["importance"], label="this prompt, this step")
        if reference is not None:
            ax.plot(blocks, reference, ls="--", color="black", lw=1, label="calibration mean")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_xticks(_block_ticks(len(similarity)))
        ax.set_xlabel("block index")
        ax.set_ylabel("cos(h_in, h_out)")
        ax.legend(loc="lower right")
        if title:
            ax.set_title(title)
    return fig


def pruning_curves(
    rows: Sequence[dict],
    unpruned: float | None = None,
    scratch: Sequence[dict] = (),
    ax: Axes | None = None,
    title: str | None = None,
    stamp: dict | None = None,
) -> Figure:
    """GenEval-mini vs pruned depth, one colour per pruning method: dashed before and solid after
    the recovery fine-tune; the unpruned model as a horizontal line; from-scratch models as stars.

    Args:
        rows: dicts with "method", "depth", "before" and (optional) "after" overall scores in [0, 1].
        unpruned: the source model's score. scratch: dicts with "label", "depth", "score".
    Returns: the Figure.
    """
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes_or_new(ax)
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["depth"])
            depths = [r["depth"] for r in mine]
            color = METHOD_COLORS.get(method)
            ax.plot(
                depths,
                [r["before"] for r in mine],
                ls="--",
                marker="o",
                ms=3,
                color=color,
                alpha=0.6,
                label=f"{method}, pruned",
            )
            if all(r.get("after") is not None for r in mine):
                ax.plot(
                    depths,
                    [r["after"] for r in mine],
                    ls="-",
                    marker="o",
                    ms=4,
                    color=color,
                    label=f"{method}, + fine-tune",
                )
        if unpruned is not None:
            ax.axhline(unpruned, color="black", lw=1, label=f"unpruned ({unpruned:.3f})")
        for s in scratch:
            ax.plot([s["depth"]], [s["score"]], marker="*", ms=12, ls="none", color="#2ca02c", label=s["label"])
        ax.set_xticks(sorted({r["depth"] for r in rows} | {s["depth"] for s in scratch}))
        ax.set_xlabel("depth (blocks kept)")
        ax.set_ylabel("GenEval-mini overall")
        ax.set_ylim(0, 1)
        ax.legend(fontsize="x-small", ncols=2)
        ax.set_title(title or "quality vs depth: pruned, then fine-tuned")
        if stamp is not None:
            stamp_figure(fig, stamp)
    return fig


# --------------------------------------------------------------------------------------------
# Training curves: loss and benchmark scores against steps, one line per run (growth, pruning,
# optimizers). Runs are {name: [(step, value), ...]}; a run keeps its colour across panels.

LOSS_SMOOTHING = 0.9  # EMA factor of the smoothed loss line (TensorBoard's; 0 draws the raw loss)
RAW_LOSS_ALPHA = 0.2  # opacity of the raw loss drawn behind the smoothed line
REFERENCE_STYLE = {"ls": "--", "lw": 1.0, "color": "#444444"}  # horizontal reference lines
PANEL_INCHES = (4.2, 3.0)  # one panel's (width, height)


def ema_smooth(values: Sequence[float], smooth: float = LOSS_SMOOTHING) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard draws losses); `smooth` in [0, 1)."""
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth={smooth}; expected a value in [0, 1)")
    out, avg = np.empty(len(values)), 0.0
    for i, v in enumerate(values):
        avg = smooth * avg + (1 - smooth) * v
        out[i] = avg / (1 - smooth ** (i + 1))
    return out


def run_colors(*names) -> dict[str, str]:
    """One colour per run name (the default colour cycle, in first-seen order), so a run keeps
    its colour across panels and figures: `run_colors(all_names)` or `run_colors(runs_a, runs_b)`."""
    ordered = list(dict.fromkeys(n for group in names for n in group))
    return {name: f"C{i}" for i, name in enumerate(ordered)}


def _xy(points) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(points, dtype=float).reshape(-1, 2)
    return a[:, 0], a[:, 1]


def _log_axis(ax: Axes, which: str) -> None:
    """Log-scales `ax`'s "x" or "y" axis, labelled with plain numbers (0.3, 200), not powers of ten;
    of the ticks between powers, 2, 3 and 5 x 10^k are labelled."""
    import matplotlib.ticker

    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")

    def minor(v, _):
        return f"{v:g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (2, 3, 5) else ""

    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.FuncFormatter(minor))


def loss_curves(
    runs: dict[str, Sequence[tuple[int, float]]],
    ax: Axes | None = None,
    smooth: float = LOSS_SMOOTHING,
    labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    logy: bool = False,
    title: str | None = None,
    stamp: dict | None = None,
) -> Figure:
    """Training loss against step, one line per run: the raw loss faint, its EMA (`smooth`) solid.

    Args:
        runs: {name: [(step, loss), ...]}.
        labels: legend text per name (default the name). colors: matplotlib colour per name.
        logy: log-scale loss axis. stamp: provenance footer (see `stamp_figure`; only when `ax` is None).
    Returns:
        the Figure (that of `ax` when given).
    """
    if not runs:
        raise ValueError("loss_curves got no runs; expected {name: [(step, loss), ...]}")
    own_figure = ax is None
    fig, ax = _axes_or_new(ax, PANEL_INCHES)
    colors = colors or run_colors(runs)
    with matplotlib.rc_context(STYLE):
        for name, points in runs.items():
            steps, loss = _xy(points)
            if smooth > 0:
                ax.plot(steps, loss, color=colors[name], alpha=RAW_LOSS_ALPHA, lw=0.8)
                loss = ema_smooth(loss, smooth)
            ax.plot(steps, loss, color=colors[name], label=(labels or {}).get(name, name))
        ax.set_xlabel("training step")
        ax.set_ylabel("training loss" + (f" (EMA {smooth})" if smooth > 0 else ""))
        if logy:
            _log_axis(ax, "y")
        ax.legend()
        if title:
            ax.set_title(title)
    if stamp is not None and own_figure:
        stamp_figure(fig, stamp)
    return fig


def metric_vs_steps(
    runs: dict[str, Sequence[tuple[int, float]]],
    ax: Axes | None = None,
    ylabel: str = "GenEval-mini",
    reference: dict[str, float] | None = None,
    labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    title: str | None = None,
    stamp: dict | None = None,
) -> Figure:
    """A score measured now and then during training (e.g. GenEval-mini overall) against step.

    Args:
        runs: {name: [(step, value), ...]}, drawn as lines with markers.
        reference: {label: value} drawn as dashed horizontal lines (e.g. the source model's score).
        labels, colors, title, stamp: as in `loss_curves`.
    Returns:
        the Figure (that of `ax` when given).
    """
    if not runs:
        raise ValueError("metric_vs_steps got no runs; expected {name: [(step, value), ...]}")
    own_figure = ax is None
    fig, ax = _axes_or_new(ax, PANEL_INCHES)
    colors = colors or run_colors(runs)
    with matplotlib.rc_context(STYLE):
        for name, points in runs.items():
            steps, values = _xy(points)
            ax.plot(steps, values, marker="o", ms=3, color=colors[name], label=(labels or {}).get(name, name))
        for text, value in (reference or {}).items():
            ax.axhline(value, **REFERENCE_STYLE)
            ax.annotate(
                text,
                (0, value),
                xycoords=("axes fraction", "data"),
                xytext=(2, 2),
                textcoords="offset points",
                fontsize="small",
                color=REFERENCE_STYLE["color"],
            )
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.legend()
        if title:
            ax.set_title(title)
    if stamp is not None and own_figure:
        stamp_figure(fig, stamp)
    return fig


def training_curves(
    loss: dict[str, Sequence[tuple[int, float]]],
    metric: dict[str, Sequence[tuple[int, float]]],
    metric_label: str = "GenEval-mini",
    reference: dict[str, float] | None = None,
    labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    smooth: float = LOSS_SMOOTHING,
    title: str | None = None,
    stamp: dict | None = None,
) -> Figure:
    """Two panels side by side: `loss_curves(loss)` and `metric_vs_steps(metric)`, one colour per run
    (`colors`, default `run_colors(loss, metric)`)."""
    colors = colors or run_colors(loss, metric)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(2 * PANEL_INCHES[0], PANEL_INCHES[1]), layout="constrained")
        left, right = fig.subplots(1, 2)
    loss_curves(loss, ax=left, smooth=smooth, labels=labels, colors=colors)
    metric_vs_steps(metric, ax=right, ylabel=metric_label, reference=reference, labels=labels, colors=colors)
    if title:
        fig.suptitle(title)
    if stamp is not None:
        stamp_figure(fig, stamp)
    return fig


def steps_to_loss(
    curves: dict[str, Sequence[tuple[int, float]]],
    rows: Sequence[dict],
    labels: dict[str, str] | None = None,
    smooth: float = LOSS_SMOOTHING,
    title: str | None = None,
    stamp: dict | None = None,
) -> Figure:
    """Two panels: the runs' training loss against step (log loss axis), and the steps each run
    needs to reach each loss level (`lab.experiments.growth.steps_to_loss` rows; a level a run never
    reached is left out of its line). One colour per run in both."""
    colors = run_colors(curves)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(2 * PANEL_INCHES[0], PANEL_INCHES[1]), layout="constrained")
        left, right = fig.subplots(1, 2)
    loss_curves(curves, ax=left, smooth=smooth, labels=labels, colors=colors, logy=True)
    with matplotlib.rc_context(STYLE):
        for name in curves:
            points = [(r["loss"], r["steps"][name]) for r in rows if r["steps"][name] is not None]
            if points:
                loss, steps = _xy(points)
                right.plot(loss, steps, marker="o", ms=3, color=colors[name], label=(labels or {}).get(name, name))
        _log_axis(right, "x")
        _log_axis(right, "y")
        right.invert_xaxis()  # lower loss to the right, as training goes
        right.set_xlabel("training loss reached (moving average)")
        right.set_ylabel("steps to reach it")
        right.legend()
        if title:
            fig.suptitle(title)
    if stamp is not None:
        stamp_figure(fig, stamp)
    return fig


# --------------------------------------------------------------------------------------------
# Optimizer memory (CAME-8bit notebook)

LEGEND_HEADROOM = 1.3  # y-axis top as a multiple of the tallest bar
OPTIMIZER_COLORS = {"adamw": "#1f77b4", "adamw8bit": "#aec7e8", "came": "#d62728", "came8bit": "#ff9896"}


def optimizer_memory_bars(
    rows: Sequence[dict], ax: Axes | None = None, title: str | None = None, stamp: dict | None = None
) -> Figure:
    """Optimizer-state bytes per parameter, grouped by model, one bar per optimizer, each labelled
    with its ratio to AdamW (fp32).

    Args:
        rows: dicts with `model`, `optimizer`, `bytes_per_param`, `vs_adamw` (as `lab bench optim` writes).
    """
    if not rows:
        raise ValueError("optimizer_memory_bars got no rows; expected lab bench optim's memory rows")
    own_figure = ax is None
    models = list(dict.fromkeys(r["model"] for r in rows))
    optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
    fig, ax = _axes_or_new(ax, (1.6 * PANEL_INCHES[0], PANEL_INCHES[1]))
    width = 0.8 / len(optimizers)
    with matplotlib.rc_context(STYLE):
        for j, opt in enumerate(optimizers):
            for i, model in enumerate(models):
                r = next((r for r in rows if r["model"] == model and r["optimizer"] == opt), None)
                if r is None:
                    continue
                x = i + (j - (len(optimizers) - 1) / 2) * width
                ax.bar(
                    x,
                    r["bytes_per_param"],
                    width,
                    color=OPTIMIZER_COLORS.get(opt, f"C{j}"),
                    label=opt if i == 0 else None,
                )
                ax.annotate(
                    f"{r['vs_adamw']:.3f}x",
                    (x, r["bytes_per_param"]),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    fontsize="x-small",
                )
        ax.set_xticks(range(len(models)), models)
        ax.set_ylabel("optimizer state (bytes / parameter)")
        ax.set_ylim(top=LEGEND_HEADROOM * max(r["bytes_per_param"] for r in rows))  # legend above the bars
        ax.legend(ncols=len(optimizers), loc="upper center")
        if title:
            ax.set_title(title)
    if stamp is not None and own_figure:
        stamp_figure(fig, stamp)
    return fig


# --------------------------------------------------------------------------------------------
# Inference-time scaling (lab.experiments.scaling; SANA 1.5 Figs. 8-11)

SELECTOR_STYLES = {  # how each best-of-N selector is drawn: the oracle is an upper bound, never a result
    "judge": {"ls": "-", "marker": "o", "label": "learned judge"},
    "oracle": {"ls": "--", "marker": "^", "label": "oracle (exact evaluator)"},
    "random": {"ls": ":", "marker": "", "label": "random choice"},
}
INTERVAL_ALPHA = 0.15  # opacity of 95% interval bands


def _band(ax: Axes, xs, rows: Sequence[dict], color: str) -> None:
    """The 95% interval of rows carrying `interval` = [lo, hi], as a shaded band."""
    if rows and "interval" in rows[0]:
        lo, hi = zip(*(r["interval"] for r in rows))
        ax.fill_between(xs, lo, hi, color=color, alpha=INTERVAL_ALPHA, lw=0)


def scaling_curves(models: dict, stamp: dict | None = None) -> Figure:
    """GenEval-mini against N, one panel per model, one line per selector (judge, oracle, random).

    Args:
        models: {model: {"curves": {selector: [{"n", "overall", "interval"}, ...]}}} (the scaling metrics).
    """
    if not models:
        raise ValueError("scaling_curves got no models")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PANEL_INCHES[0] * len(models), PANEL_INCHES[1] + 0.3), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
        for ax, (model, m) in zip(axes, models.items()):
            for i, (selector, style) in enumerate(SELECTOR_STYLES.items()):
                rows = m["curves"].get(selector, [])
                if not rows:
                    continue
                ns = [r["n"] for r in rows]
                ax.plot(
                    ns,
                    [r["overall"] for r in rows],
                    color=f"C{i}",
                    ls=style["ls"],
                    marker=style["marker"],
                    ms=4,
                    label=style["label"],
                )
                _band(ax, ns, rows, f"C{i}")
            ax.set_xscale("log", base=2)
            ax.set_xticks(ns, [str(n) for n in ns])
            ax.set_xlabel("candidates N")
            ax.set_title(f"{model} ({m.get('blocks', '?')} blocks)")
            ax.set_ylim(0, 1)
        axes[0].set_ylabel("GenEval-mini overall")
        axes[0].legend(loc="lower right", fontsize="small")
    if stamp is not None:
        stamp_figure(fig, stamp)
    return fig


def steps_vs_candidates(data: dict, ax: Axes | None = None, stamp: dict | None = None) -> Figure:
    """GenEval-mini against sampling compute per final image (NFE): more denoising steps for one
    image vs more candidates at the default steps, judged (SANA 1.5 Fig. 9)."""
    own_figure = ax is None
    fig, ax = _axes_or_new(ax, PANEL_INCHES)
    with matplotlib.rc_context(STYLE):
        lines = (
            ("steps", "more steps, 1 image"),
            ("candidates", "more candidates (judge)"),
            ("candidates_oracle", "more candidates (oracle bound)"),
        )
        for i, (key, label) in enumerate(lines):
            rows = data.get(key, [])
            if not rows:
                continue
            xs = [r["nfe"] for r in rows]
            ax.plot(xs, [r["overall"] for r in rows], marker="o", ms=4, color=f"C{i}", label=label)
            _band(ax, xs, rows, f"C{i}")
            for r, x in zip(rows, xs):
                ax.annotate(
                    f"{r['steps']} steps" if key == "steps" else f"N={r['n']}",
                    (x, r["overall"]),
                    fontsize="x-small",
                    xytext=(3, -9 if key == "steps" else 4),
                    textcoords="offset points",
                    color=f"C{i}",
                )
        ax.set_xscale("log")
        ax.set_xlabel("transformer evaluations per final image (NFE)")
        ax.set_ylabel("GenEval-mini overall")
        ax.set_title(f"steps vs candidates ({data['model']})")
        ax.legend(loc="lower right", fontsize="small")
    if stamp is not None and own_figure:
        stamp_figure(fig, stamp)
    return fig


def compute_frontier(rows: Sequence[dict], ax: Axes | None = None, stamp: dict | None = None) -> Figure:
    """GenEval-mini against seconds per final image for every (model, N); one line per model, the
    Pareto frontier (best accuracy at each budget) circled."""
    own_figure = ax is None
    fig, ax = _axes_or_new(ax, PANEL_INCHES)
    models = list(dict.fromkeys(r["model"] for r in rows))
    with matplotlib.rc_context(STYLE):
        for i, model in enumerate(models):
            mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["seconds"])
            ax.plot(
                [r["seconds"] for r in mine],
                [r["overall"] for r in mine],
                marker="o",
                ms=4,
                color=f"C{i}",
                label=f"{model} ({mine[0]['blocks']} blocks)",
            )
            for r in mine:
                ax.annotate(
                    f"{r['n']}",
                    (r["seconds"], r["overall"]),
                    fontsize="x-small",
                    xytext=(3, 3),
                    textcoords="offset points",
                    color=f"C{i}",
                )
        best = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["seconds"])
        ax.plot(
            [r["seconds"] for r in best],
            [r["overall"] for r in best],
            "o",
            ms=10,
            mfc="none",
            mec="#222222",
            label="frontier",
        )
        ax.set_xscale("log")
        # two lines: one line is cut at the panel width
        ax.set_xlabel("seconds per final image\n(N candidates generated and judged)")
        ax.set_ylabel("GenEval-mini overall")
        ax.set_title("compute-matched depth x N (labels: N)")
        ax.legend(loc="lower right", fontsize="small")
    if stamp is not None and own_figure:
        stamp_figure(fig, stamp)
    return fig


def judge_reliability(reliability: dict, stamp: dict | None = None) -> Figure:
    """Two panels: balanced accuracy and AUC per task for each split (bars), and the calibration
    curve (fraction the evaluator passes against the judge's P(yes))."""
    from lab.world import TASKS

    splits = list(reliability)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(2 * PANEL_INCHES[0], PANEL_INCHES[1] + 0.3), layout="constrained")
        bars, calib = fig.subplots(1, 2)
        names = [t for t in TASKS if any(t in reliability[s]["tasks"] for s in splits)] + ["overall"]
        width = 0.8 / len(splits)
        for i, split in enumerate(splits):
            rows = reliability[split]["tasks"] | {"overall": reliability[split]["overall"]}
            values = [rows.get(t, {}).get("balanced_accuracy", np.nan) for t in names]
            xs = np.arange(len(names)) + (i - (len(splits) - 1) / 2) * width
            bars.bar(xs, values, width, color=f"C{i}", label=f"{split}: balanced accuracy")
            aucs = [rows.get(t, {}).get("auc", np.nan) for t in names]
            bars.plot(xs, aucs, "_", ms=10, mew=2, color="#222222", label="AUC" if i == 0 else None)
            c = reliability[split]["calibration"]
            calib.plot(
                [b["p_mean"] for b in c], [b["yes_rate"] for b in c], marker="o", ms=4, color=f"C{i}", label=split
            )
        bars.axhline(0.9, **REFERENCE_STYLE)
        bars.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=30, ha="right")
        bars.set_ylim(0, 1.05)
        bars.set_ylabel("agreement with the evaluator")
        bars.legend(fontsize="x-small", loc="lower left")
        calib.plot([0, 1], [0, 1], **REFERENCE_STYLE)
        calib.set_xlabel("judge P(yes)")
        calib.set_ylabel("fraction the evaluator passes")
        calib.set_title("calibration")
        calib.legend(fontsize="small")
    if stamp is not None:
        stamp_figure(fig, stamp)
    return fig


# Best-of-N (lab.scaling; SANA 1.5 section 4): the tournament bracket and best-so-far vs N

BRACKET_THUMB = 0.8  # a thumbnail's side, in leaf spacings (leaves sit 1 apart)
BRACKET_ROUND_GAP = 1.8  # vertical distance between rounds, in leaf spacings
BRACKET_LEAF_INCHES = 0.55  # width per candidate ...
BRACKET_MAX_INCHES = 14.0  # ... up to this figure width
BRACKET_MIN_INCHES = 3.0
BRACKET_LABEL_MAX_LEAVES = 16  # more candidates than this: leaves get an index only, no P(yes)
WINNER_LW, LOSER_LW = 2.0, 0.8  # line widths (points) of the winner's and the loser's path
LOSER_COLOR = "#bbbbbb"


def _bracket_positions(n: int, bracket) -> list[dict[int, tuple[float, float]]]:
    """Where each surviving candidate sits after each round: level 0 the leaves (x = index, y = 0),
    level r a match's winner midway above its two players."""
    where = {i: (float(i), 0.0) for i in range(n)}
    levels = [dict(where)]
    for r, matches in enumerate(bracket, 1):
        nxt = {}
        for m in matches:
            xs = [where[m.a][0]] + ([where[m.b][0]] if m.b is not None else [])
            nxt[m.winner] = (sum(xs) / len(xs), r * BRACKET_ROUND_GAP)
        where = nxt
        levels.append(dict(where))
    return levels


def tournament_bracket(
    result,
    images=None,
    verdicts: Sequence | None = None,
    rounds: int | None = None,
    title: str | None = None,
    stamp: dict | None = None,
) -> Figure:
    """The best-of-N tournament as a bracket: candidates along the bottom, each round's winners
    above their match, the winner's path in green and the champion on top.

    Args:
        result: a `lab.scaling.BestOfN` (or anything with `n`, `scores` and `bracket`, a list of
            rounds of `Match`).
        images: (N, H, W, 3) candidate images for thumbnails, or None (indices only).
        verdicts: N booleans (or geneval.Verdict) framing each leaf green / red, or None.
        rounds: draw only the first `rounds` rounds (to draw the bracket round by round); None: all.
        title: axes title (default: round r of R, and the winner once the last round is drawn).
        stamp: provenance for the footer (see `stamp_figure`).
    Returns:
        the Figure (its size fits N and the full number of rounds, so a partial bracket does not jump).
    """
    n = len(result.scores) if result.scores is not None else result.n
    if n < 1:
        raise ValueError("tournament_bracket got no candidates; expected a best-of-N with at least one")
    if verdicts is not None and len(verdicts) != n:
        raise ValueError(f"{len(verdicts)} verdicts for {n} candidates; expected one per candidate")
    total = int(np.ceil(np.log2(n))) if n > 1 else 0
    shown = list(result.bracket[: total if rounds is None else rounds])
    levels = _bracket_positions(n, shown)
    images = None if images is None else [_to_display(x) for x in images]
    half = BRACKET_THUMB / 2
    width = float(np.clip(n * BRACKET_LEAF_INCHES, BRACKET_MIN_INCHES, BRACKET_MAX_INCHES))
    height = width * (total * BRACKET_ROUND_GAP + 2 * BRACKET_THUMB + 1) / (n + 1)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, max(height, BRACKET_MIN_INCHES / 2)), layout="constrained")
        ax = fig.subplots()
        ax.set_axis_off()
        ax.set_aspect("equal")
        ax.set_xlim(-1, n)
        ax.set_ylim(-BRACKET_THUMB - half, total * BRACKET_ROUND_GAP + BRACKET_THUMB)
        for r, matches in enumerate(shown, 1):
            below, above = levels[r - 1], levels[r]
            for m in matches:
                top = above[m.winner]
                for player in (m.a, m.b):
                    if player is None:
                        continue
                    x, y = below[player]
                    won = player == m.winner
                    elbow = (y + top[1]) / 2
                    ax.plot(
                        [x, x, top[0], top[0]],
                        [y + half, elbow, elbow, top[1] - half],
                        zorder=1,
                        color=CORRECT_COLOR if won else LOSER_COLOR,
                        lw=WINNER_LW if won else LOSER_LW,
                    )
        p_yes = getattr(result.scores, "p_yes", None)
        for level, where in enumerate(levels):
            for c, (x, y) in where.items():
                if images is not None:
                    ax.imshow(images[c], extent=(x - half, x + half, y - half, y + half), zorder=2)
                correct = None if verdicts is None or level else bool(getattr(verdicts[c], "correct", verdicts[c]))
                edge = FRAME_COLOR if correct is None else (CORRECT_COLOR if correct else WRONG_COLOR)
                ax.add_patch(
                    matplotlib.patches.Rectangle(
                        (x - half, y - half),
                        BRACKET_THUMB,
                        BRACKET_THUMB,
                        fill=images is None,
                        fc="white",
                        ec=edge,
                        zorder=3,
                        lw=VERDICT_FRAME_LW if correct is not None else PLAIN_FRAME_LW,
                    )
                )
                if images is None or level == 0:
                    label = f"#{c}"
                    if level == 0 and p_yes is not None and n <= BRACKET_LABEL_MAX_LEAVES:
                        label += f"\n{p_yes[c]:.2f}"
                    ax.text(
                        x,
                        y - half if images is not None else y,
                        label,
                        ha="center",
                        va="top" if images is not None else "center",
                        fontsize="x-small",
                        zorder=4,
                    )
        champion = next(iter(levels[-1])) if len(shown) == total and total else None
        done = f", winner #{champion}" if champion is not None else ""
        ax.set_title(title or f"tournament: round {len(shown)} of {total}{done}")
        if stamp is not None:
            stamp_figure(fig, stamp)
    return fig


def best_so_far_curve(
    judge_pick, any_correct, ax: Axes | None = None, title: str | None = None, stamp: dict | None = None
) -> Figure:
    """Best-of-N quality as N grows, for one prompt: whether the judge's pick among the first N
    candidates is correct (the exact evaluator's verdict), and whether any of them is (the oracle's
    bound).

    Args:
        judge_pick: (N,) bool, entry k: the judge's best of candidates 0..k is correct.
        any_correct: (N,) bool, entry k: some candidate in 0..k is correct.
    Returns: the Figure.
    """
    judge_pick, any_correct = np.asarray(judge_pick, float), np.asarray(any_correct, float)
    if judge_pick.shape != any_correct.shape or judge_pick.ndim != 1 or not len(judge_pick):
        raise ValueError(
            f"judge_pick {judge_pick.shape} and any_correct {any_correct.shape}; expected two equal (N,) arrays"
        )
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes_or_new(ax, PANEL_INCHES)
        ns = np.arange(1, len(judge_pick) + 1)
        ax.step(ns, any_correct, where="post", **REFERENCE_STYLE, label="oracle: any candidate correct")
        ax.step(
            ns, judge_pick, where="post", color=METHOD_COLORS["importance"], lw=MEAN_LW, label="judge's pick correct"
        )
        ax.set_xlabel("N (candidates so far)")
        ax.set_ylabel("GenEval-mini verdict")
        ax.set_yticks([0, 1], [MARKS[False], MARKS[True]])
        ax.set_ylim(-0.1, 1.25)
        ax.set_xlim(1, max(2, len(ns)))
        ax.legend(loc="upper left", fontsize="x-small", ncols=2)
        ax.set_title(title or "best-so-far verdict vs N")
        if stamp is not None:
            stamp_figure(fig, stamp)
    return fig
