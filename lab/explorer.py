"""The interactive block-similarity explorer (ipywidgets): pick or type a prompt, slide the
denoising timestep, and watch each block's input/output similarity and the image being formed.

    explorer = BlockExplorer(pipe, prompts=[p.text for p in world.load_prompts("quick")[:8]])
    explorer            # in a notebook: the widget

One sampling run per prompt (`lab.pruning.trace_blocks`, hooks on every block) is computed the
first time the prompt is shown and cached, so moving the slider only redraws. Everything is
plain widgets with PNG images, so it works headless: tests drive `prompt_menu`, `prompt_text`
and `step` in Python and read `curve.value` and `image.value`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch

from lab import plots
from lab.model import unknown_prompt_words
from lab.pruning import DEFAULT_GUIDANCE, DEFAULT_TIMESTEPS, ImportanceTable, trace_blocks

IMAGE_SCALE = 3  # the 64x64 images are shown 3x larger, pixels kept sharp
CURVE_SIZE = (5.0, 3.0)  # inches
CURVE_MARGIN = 0.02  # y-axis headroom around the similarities of a prompt's whole run


def decode_latents(pipe, latents: torch.Tensor) -> np.ndarray:
    """(B, C, h, w) pipeline latents -> (B, H, W, 3) uint8 images, as the pipeline decodes them."""
    vae = pipe.vae
    with torch.no_grad():
        images = vae.decode(latents.to(vae.device, vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    images = pipe.image_processor.postprocess(images, output_type="np")
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def png_bytes(image: np.ndarray, scale: int = IMAGE_SCALE) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes, enlarged `scale` times with nearest-neighbour."""
    from PIL import Image

    im = Image.fromarray(image)
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class BlockExplorer:
    """Widgets: `prompt_menu` (Dropdown), `prompt_text` (Text, applied on Enter), `step`
    (IntSlider over the sampling steps), `curve` (Image: per-block cos(h_in, h_out) of the
    conditional branch at that step), `image` (Image: the denoised estimate x0 at that step),
    `final` (Image: the generated image), `status` (HTML). `widget` holds them all."""

    def __init__(
        self,
        pipe,
        prompts: Sequence[str],
        timesteps: int = DEFAULT_TIMESTEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        seed: int = 0,
        reference: ImportanceTable | None = None,
    ):
        import ipywidgets as w

        prompts = [getattr(p, "text", p) for p in prompts]
        if not prompts:
            raise ValueError("the explorer needs at least one prompt to start with")
        if reference is not None and reference.num_blocks != len(pipe.transformer.transformer_blocks):
            raise ValueError(
                f"the reference table has {reference.num_blocks} blocks but the model has "
                f"{len(pipe.transformer.transformer_blocks)}"
            )
        self.pipe, self.timesteps, self.guidance_scale, self.seed = pipe, timesteps, guidance_scale, seed
        self.reference = reference
        self._traces: dict[str, object] = {}  # prompt -> BlockTrace
        self._images: dict[tuple[str, int], bytes] = {}  # (prompt, step) -> PNG
        self.prompt = None

        self.prompt_menu = w.Dropdown(options=prompts, value=prompts[0], description="prompt")
        self.prompt_text = w.Text(
            placeholder="or type a prompt and press Enter", continuous_update=False, layout=w.Layout(width="40%")
        )
        self.step = w.IntSlider(min=0, max=timesteps - 1, value=0, description="step", continuous_update=True)
        self.curve = w.Image(format="png")
        self.image = w.Image(format="png")
        self.final = w.Image(format="png")
        self.status = w.HTML()
        captions = w.HBox([w.HTML("<b>estimate at this step</b>"), w.HTML("<b>final image</b>")])
        self.widget = w.VBox(
            [
                w.HBox([self.prompt_menu, self.prompt_text]),
                self.step,
                w.HBox([self.curve, w.VBox([captions, w.HBox([self.image, self.final])])]),
                self.status,
            ]
        )
        self.prompt_menu.observe(lambda change: self.show(change["new"]), names="value")
        self.prompt_text.observe(lambda change: self.show(change["new"]), names="value")
        self.step.observe(lambda change: self._draw(), names="value")
        self.show(prompts[0])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def trace(self, prompt: str):
        """The cached sampling run of `prompt` (computed on first use)."""
        if prompt not in self._traces:
            self._traces[prompt] = trace_blocks(
                self.pipe, [prompt], [self.seed], self.timesteps, self.guidance_scale, keep_predictions=True
            )
        return self._traces[prompt]

    def show(self, prompt: str) -> None:
        """Switches to `prompt`; an empty prompt is reported in `status` and changes nothing."""
        prompt = (prompt or "").strip()
        if not prompt:
            self.status.value = "type a prompt, e.g. <i>a photo of two red circles</i>"
            return
        unknown = unknown_prompt_words(self.pipe.tokenizer, prompt)
        try:
            self.trace(prompt)
        except ValueError as e:  # shown, not raised: a widget callback has nowhere to raise to
            self.status.value = f"<span style='color:#d7191c'>{e}</span>"
            return
        self.prompt = prompt
        self._draw()
        if unknown:
            self.status.value += f" &nbsp; <span style='color:#d7191c'>unknown words read as [UNK]: {unknown}</span>"

    def similarity_at(self, step: int) -> np.ndarray:
        """(num_blocks,) cos(h_in, h_out) of the current prompt's conditional branch at `step`."""
        tr = self._traces[self.prompt]
        return tr.similarity[step, :, tr.branches.index("cond"), 0]

    def _draw(self) -> None:
        if self.prompt is None:
            return
        tr, i = self._traces[self.prompt], self.step.value
        cond = tr.similarity[:, :, tr.branches.index("cond"), 0]
        reference = None if self.reference is None else 1.0 - self.reference.mean
        lo = min(cond.min(), reference.min() if reference is not None else 1.0) - CURVE_MARGIN
        fig = plots.block_similarity_curve(
            cond[i],
            reference,
            ylim=(lo, 1.0 + CURVE_MARGIN),
            size=CURVE_SIZE,
            title=f"t = {tr.timesteps[i]:.0f} (step {i + 1}/{len(tr.timesteps)})",
        )
        self.curve.value = figure_png(fig)
        self.image.value = self._estimate_png(i)
        self.final.value = self._estimate_png(None)
        least = int(np.argmax(cond[i]))
        self.status.value = (
            f"<b>{self.prompt}</b> &nbsp; step {i + 1}/{len(tr.timesteps)}, t = {tr.timesteps[i]:.0f}"
            f" &nbsp; most redundant block here: {least} (cos {cond[i, least]:.3f})"
        )

    def _estimate_png(self, step: int | None) -> bytes:
        """PNG of the x0 estimate at `step`, or of the final image when `step` is None."""
        key = (self.prompt, -1 if step is None else step)
        if key not in self._images:
            tr = self._traces[self.prompt]
            latents = tr.latents if step is None else tr.predictions[step]
            self._images[key] = png_bytes(decode_latents(self.pipe, latents)[0])
        return self._images[key]


def block_explorer(pipe, prompts: Sequence[str], **kwargs) -> BlockExplorer:
    """Builds the explorer (see `BlockExplorer`); display the returned object in a notebook."""
    return BlockExplorer(pipe, prompts, **kwargs)
