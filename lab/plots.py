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


def use_style() -> None:
    """Makes the house style the default for figures made elsewhere too (e.g. pyplot in a notebook)."""
    matplotlib.rcParams.update(STYLE)


def image_grid(images, captions: Sequence[str] | None = None, verdicts: Sequence | None = None, ncols: int = 8,
               title: str | None = None, stamp: dict | None = None, panel_inches: float = 1.4,
               caption_chars: int = 22, caption_line_inches: float = 0.14, title_inches: float = 0.35) -> Figure:
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
        fig = Figure(figsize=(ncols * panel_inches, nrows * row_inches + (title_inches if title else 0)), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if i >= n:
                continue
            ax.imshow(images[i])
            if captions is not None:
                ax.set_title("\n".join(textwrap.wrap(captions[i], caption_chars)), fontsize="small", y=CAPTION_Y,
                             va="top", pad=0)
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
    ax.text(*MARK_XY, MARKS[correct], transform=ax.transAxes, ha="right", va="top", color="white",
            fontsize="large", fontweight="bold", bbox={"boxstyle": "round,pad=0.15", "fc": color, "ec": "none"})
    _frame(ax, color, VERDICT_FRAME_LW)


def _frame(ax: Axes, color: str, lw: float) -> None:
    ax.add_patch(matplotlib.patches.Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec=color, lw=lw, clip_on=False))


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
    and the lab's git commit (`lab.provenance.git_commit()`) unless the stamp names one.
    Figures with constrained layout keep a `footer_inches` band free for it.

    Returns `fig`, stamped.
    """
    from lab.provenance import git_commit

    entries = dict(stamp)
    entries.setdefault("commit", git_commit())
    text = "  \u00b7  ".join(f"{k}={v}" for k, v in entries.items())
    engine = fig.get_layout_engine()
    if isinstance(engine, matplotlib.layout_engine.ConstrainedLayoutEngine):
        band = footer_inches / fig.get_figheight()
        engine.set(rect=(0, band, 1, 1 - band))
    fig.text(*STAMP_XY, text, ha="left", va="bottom", fontsize=fontsize, color=STAMP_COLOR)
    return fig
