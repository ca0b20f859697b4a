"""GenEval-mini's detector: objects (shape, colour, box, fit score) in a 64x64 image of the shapes world.

It replaces GenEval's Mask2Former + CLIP colour classifier with what the shapes world allows:

1. foreground = ink on the white background, connected components;
2. non-objects are dropped: components too small (below the world's smallest object, with a
   margin) or too large, whose core pixels are far from every palette colour (noise, grey frames,
   decoded random latents) or spread too widely around their mean colour;
3. instances, not blobs: a component that no single template fits well is split into 2..4 parts
   (k-means on its pixels from farthest-point seeds; a count search keeps the split whose parts fit
   best), so touching and 1-px-apart objects count as a person counts them;
4. colour = nearest palette colour of each part's core (never its edges: red blurred onto white
   looks pink); shape = the best soft IoU among templates drawn with `world.shape_mask` at the size
   and centre the part's colour coverage implies (sharp or blurred). Besides the four classes, the
   templates hold shapes the world never draws (squares rotated 15-45 deg, an X, a thick plus, an
   upside-down triangle); when one of those fits best, no class fits well, or two classes fit about
   equally, the detection is `UNRECOGNISED` and never counts as any class.

`lab.geneval` validates images, applies GenEval's rules to these detections and reports.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lab import world
from lab.world import COLORS, IMAGE_SIZE, SHAPES, WorldConfig, _block_count  # the renderer's exact k x k count

UNRECOGNISED = "unrecognised shape"  # the shape of a detection no class fits; never matches a prompt's class


@dataclass(frozen=True)
class EvalConfig:
    """Detector thresholds and GenEval's rule parameters. Intensities and colours on the [0, 1] scale."""

    ink_threshold: float = 0.35  # foreground when 1 - min(R, G, B) exceeds this; white is 0, the palette >= 0.53 (pink)
    min_area_fraction: float = (
        0.6  # smallest object = this x the world's smallest (a triangle of side min_size, ~98 px)
    )
    max_size_factor: float = 1.5  # an object's box side at most this x the world's max_size (22 px -> 33 px), its
    # area at most this x max_size^2 (726 px), a component's at most max_parts x that (2,904 px of the 4,096)
    palette_max_distance: float = 0.3  # core colour farther than this (RGB, [0, 1]) from every palette colour: not an
    # object. Palette colours are >= 0.28 apart; S's detections sit within 0.26 (99th pct); grey is 0.38 away
    max_core_spread: float = 0.15  # RMS distance of core pixels to their mean colour; objects under noise 0.05 ~0.09
    min_fit: float = 0.45  # best template IoU below this: not an object (a smear)
    recognise_floor: float = (
        0.7  # best class IoU below this: an unrecognised shape (true shapes > 0.8 under blur + noise)
    )
    ambiguity_margin: float = 0.02  # the two best classes closer than this in IoU: an unrecognised shape
    split_below: float = 0.88  # a component whose best single fit is below this is tried as 2..max_parts objects
    split_gain: float = 0.04  # a split is kept when its area-weighted fit beats the single fit by this
    max_parts: int = 4  # most objects one component is split into (the world draws at most 4)
    kmeans_iterations: int = 6  # Lloyd steps of the pixel k-means that proposes a split
    kmeans_color_weight: float = 25.0  # pixels of distance one unit of RGB difference counts as, in that k-means
    refine_iterations: int = 2  # reassignments of a split's pixels to the part whose fitted template covers them most
    core_fraction: float = 0.5  # colour is read from pixels at least this fraction of the deepest one's depth
    support_radius: int = 2  # pixels around a component whose colour coverage counts towards it (blurred edges)
    blur_sigmas: tuple[float, ...] = (0.0, 0.75, 1.5)  # pixels; shape templates are also tried blurred by these
    # GenEval keeps detections with confidence > 0.3, or > 0.9 for counting prompts, to calibrate
    # Mask2Former's scores. Ours is a shape-fit IoU (true shapes score > 0.94 clean, > 0.8 under
    # blur 1 px + noise 0.05; merged blobs and smears less), so one threshold serves both tasks;
    # the fields stay separate so a study can change one.
    min_score: float = 0.5
    counting_min_score: float = 0.5
    max_per_class: int = 16  # GenEval's MAX_OBJECTS: detections kept per class, best first
    relation_margin: float = 0.1  # GenEval's POSITION_THRESHOLD
    relation_strength: float = 0.5  # GenEval: a relation holds when its strength exceeds this
    world_config: WorldConfig = world.DEFAULT_WORLD  # shape geometry of the templates and object sizes


DEFAULT_EVAL = EvalConfig()
_PALETTE_NAMES = tuple(COLORS)
_PALETTE = np.array([COLORS[c] for c in _PALETTE_NAMES], np.float32) / 255  # (8, 3) in [0, 1]
_EPS = 1e-6
_MOMENT_GRID = 768  # samples per axis when measuring a template's area and centroid
_MOMENT_EXTENT = 1.5  # half-side of that grid, in box half-sides (a rotated square reaches sqrt(2))


@dataclass(frozen=True)
class Template:
    """A shape drawn by `world.shape_mask(base)`, rotated by `angle` degrees (counter-clockwise on
    screen), upside down if `flip`, with cross arms of `arm` x the half-size (None: the world's)."""

    name: str
    base: str
    angle: float = 0.0
    flip: bool = False
    arm: float | None = None


# The four classes, then shapes the world never draws: the nearest lookalikes of each class.
CLASS_TEMPLATES = tuple(Template(s, s) for s in SHAPES)
OTHER_TEMPLATES = (
    Template("square rotated 15", "square", 15.0),
    Template("square rotated -15", "square", -15.0),
    Template("square rotated 30", "square", 30.0),
    Template("square rotated -30", "square", -30.0),
    Template("diamond", "square", 45.0),
    Template("X cross", "cross", 45.0),
    Template("thick plus", "cross", arm=0.65),
    Template("upside-down triangle", "triangle", flip=True),
)


@dataclass(frozen=True)
class Detection:
    """One object found in an image.

    `shape` is a class of `world.SHAPES` or `UNRECOGNISED`; `box` is (x0, y0, x1, y1) in pixels
    (y downward, x1/y1 exclusive, as `world.Object.box`); `area` the object's pixel count; `score`
    in [0, 1] the soft IoU of the best-fitting class template; `rgb` the mean colour of its core in [0, 1].
    """

    shape: str
    color: str
    box: tuple[float, float, float, float]
    area: int
    score: float
    rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_json(self) -> dict:
        return {
            "shape": self.shape,
            "color": self.color,
            "box": [round(v, 2) for v in self.box],
            "area": self.area,
            "score": round(self.score, 3),
            "rgb": [round(v, 3) for v in self.rgb],
        }


def find_objects(x: np.ndarray, config: EvalConfig = DEFAULT_EVAL) -> list[Detection]:
    """The objects of one validated image.

    Args:
        x: (64, 64, 3) float32 in [0, 1] (see `geneval.as_image`).
    Returns:
        Detections in raster order of their components; non-objects are left out.
    """
    ink = 1 - x.min(axis=2)  # 0 on white, >= 0.53 on every palette colour
    labels, _ = ndimage.label(ink > config.ink_threshold)
    limits = _area_limits(config)
    out = []
    pad = config.support_radius
    for i, sl in enumerate(ndimage.find_objects(labels), 1):
        if sl is None:
            continue
        r0, r1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, IMAGE_SIZE)
        c0, c1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, IMAGE_SIZE)
        crop, lab = x[r0:r1, c0:c1], labels[r0:r1, c0:c1]
        comp = lab == i
        area = int(comp.sum())
        if not limits[0] <= area <= limits[2]:
            continue
        out.extend(_instances(crop, comp, (lab != 0) & ~comp, (c0, r0), config))
    return out


@functools.lru_cache(maxsize=16)
def _area_limits(config: EvalConfig) -> tuple[float, float, float]:
    """Pixel areas (smallest object, largest object, largest component): the world's smallest and
    largest objects (a triangle of side min_size, a square of side max_size) with the config's
    margins, and `max_parts` of the largest (frames filled with one colour are larger)."""
    wc = config.world_config
    smallest = min(_unit_moments(t, wc)[0] for t in CLASS_TEMPLATES) * (wc.min_size / 2) ** 2
    largest = config.max_size_factor * wc.max_size**2
    return config.min_area_fraction * smallest, largest, config.max_parts * largest


def _instances(
    crop: np.ndarray, comp: np.ndarray, others: np.ndarray, origin: tuple[int, int], config: EvalConfig
) -> list[Detection]:
    """The objects of one component: as one object, or split into the parts that fit best.

    `crop` (h, w, 3) in [0, 1] is a window whose top-left pixel is `origin` = (x, y) in the image;
    `comp` (h, w) the component, `others` (h, w) the other components' pixels in the window.
    """
    if not _is_pure(crop, comp, config):
        return []
    single, single_fit, _ = _describe(crop, comp, others, origin, config)
    best_fit, best = (single_fit, [single]) if single is not None else (0.0, [])
    max_side = config.max_size_factor * config.world_config.max_size
    too_big = single is not None and single.box[2] - single.box[0] > max_side  # a blob of several objects
    if best_fit < config.split_below or too_big or single is None:
        ys, xs = np.nonzero(comp)
        feats = np.concatenate([np.stack([xs, ys], 1), config.kmeans_color_weight * crop[ys, xs]], 1).astype(np.float32)
        max_k = min(config.max_parts, int(len(ys) // _area_limits(config)[0]))
        seeds = _depth_peaks(comp, config)
        for k, first in [(n, f) for n in range(2, max_k + 1) for f in (seeds[:n], [])]:
            # Two proposals per count: k-means from the depth peaks, and from farthest points.
            assign = _kmeans(feats, k, config.kmeans_iterations, first=first, index=(ys, xs))
            for step in range(config.refine_iterations + 1):
                parts = [_part(comp.shape, ys[assign == j], xs[assign == j]) for j in range(k)]
                described = [_describe(crop, p, others | (comp & ~p), origin, config) for p in parts]
                if step == config.refine_iterations:
                    break
                # Refine (EM-like): each pixel goes to the part whose fitted template covers it most,
                # which moves k-means' straight cut to where unequal objects really meet; a part that
                # is no object (a sliver) gives its pixels away.
                drawn = np.stack([m[ys, xs] if m is not None else np.zeros(len(ys)) for _, _, m in described])
                new = np.argmax(drawn, 0)
                if np.array_equal(new, assign) or not drawn.any():
                    break
                assign = new
            # Pixels of parts that are no object count as unfitted (IoU 0).
            fit = float(sum(f * p.sum() for (d, f, _), p in zip(described, parts) if d is not None) / comp.sum())
            found = [d for d, _, _ in described if d is not None]
            gain = 0.0 if len(found) == len(best) else config.split_gain  # more objects must earn their place
            if fit > best_fit + gain:
                best_fit, best = fit, found
    if not best or best_fit < config.min_fit:
        return []
    return [d for d in best if d.box[2] - d.box[0] <= max_side]


def _part(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """A boolean mask of `shape` true at pixels (ys, xs)."""
    part = np.zeros(shape, bool)
    part[ys, xs] = True
    return part


def _depth_peaks(comp: np.ndarray, config: EvalConfig) -> list[tuple[int, int]]:
    """Watershed-style markers: pixels (y, x) of `comp` (h, w) deepest in their neighbourhood (the
    distance transform's local maxima), deepest first, at least half the world's smallest object
    apart: the centres of objects that touch."""
    depth = ndimage.distance_transform_edt(comp)
    size = max(int(config.world_config.min_size / 2), 1)
    peaks = (depth == ndimage.maximum_filter(depth, size=size)) & comp
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-depth[ys, xs], kind="stable")
    chosen: list[tuple[int, int]] = []
    for y, x in zip(ys[order], xs[order]):
        if all((y - cy) ** 2 + (x - cx) ** 2 >= size**2 for cy, cx in chosen):
            chosen.append((int(y), int(x)))
    return chosen


def _kmeans(pts: np.ndarray, k: int, iterations: int, first: list[tuple[int, int]] = (), index=None) -> np.ndarray:
    """Cluster index (n,) of each of `pts` (n, d): Lloyd's k-means seeded at the pixels `first`
    ((y, x), found in `index` = (ys, xs) of the points), then by farthest points (deterministic)."""
    centres = []
    if first:
        lookup = {(int(y), int(x)): i for i, (y, x) in enumerate(zip(*index))}
        centres = [pts[lookup[p]] for p in first if p in lookup]
    if not centres:
        centres = [pts[np.argmax(((pts - pts.mean(0)) ** 2).sum(1))]]
    d2 = np.min([((pts - c) ** 2).sum(1) for c in centres], axis=0)
    while len(centres) < k:
        centres.append(pts[np.argmax(d2)])
        d2 = np.minimum(d2, ((pts - centres[-1]) ** 2).sum(1))
    c = np.stack(centres[:k])
    for _ in range(iterations):
        assign = np.argmin(((pts[:, None] - c[None]) ** 2).sum(2), 1)
        c = np.stack([pts[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(k)])
    return np.argmin(((pts[:, None] - c[None]) ** 2).sum(2), 1)


def _core(comp: np.ndarray, config: EvalConfig) -> np.ndarray:
    """The pixels deepest inside `comp` (h, w): where blur and anti-aliasing have not mixed in white."""
    depth = ndimage.distance_transform_edt(comp)
    return depth >= config.core_fraction * depth.max()


def _is_pure(crop: np.ndarray, comp: np.ndarray, config: EvalConfig) -> bool:
    """Whether the core pixels of `comp` are mostly palette colours: their median distance to the
    nearest palette colour is within `palette_max_distance` (a touching red-blue pair passes, noise
    and grey frames do not)."""
    px = crop[_core(comp, config)]
    nearest = np.sqrt(((px[:, None] - _PALETTE[None]) ** 2).sum(2)).min(1)
    return float(np.median(nearest)) <= config.palette_max_distance


def _describe(crop: np.ndarray, comp: np.ndarray, others: np.ndarray, origin: tuple[int, int], config: EvalConfig):
    """One object from the pixels `comp` (h, w) of `crop` (h, w, 3). Returns (Detection or None
    for a non-object, the best template IoU, that template drawn (h, w) in [0, 1] or None)."""
    area = int(comp.sum())
    if area < _area_limits(config)[0]:
        return None, 0.0, None
    px = crop[_core(comp, config)]
    rgb = px.mean(axis=0)
    dist = np.sqrt(((_PALETTE - rgb) ** 2).sum(axis=1))
    spread = float(np.sqrt(((px - rgb) ** 2).sum(1).mean()))
    if dist.min() > config.palette_max_distance or spread > config.max_core_spread:
        return None, 0.0, None
    color = _PALETTE_NAMES[int(np.argmin(dist))]
    # Coverage: the fraction of each pixel painted in the core colour (pixel = (1 - a) white + a colour),
    # on the pixels near this object and nearer to it than to any other.
    ink_dir = 1 - rgb
    coverage = np.clip((1 - crop) @ ink_dir / max(float(ink_dir @ ink_dir), _EPS), 0, 1)
    support = _dilate(comp, config.support_radius) & ~(_dilate(others, 1) & ~comp)
    coverage = np.where(support, coverage, 0)
    fits = _fit_templates(coverage, origin, config)
    if not fits:
        return None, 0.0, None
    best_any, _, drawn = max(fits.values(), key=lambda f: f[0])
    ranked = sorted(((fits[t.name][0], t.name) for t in CLASS_TEMPLATES), reverse=True)
    (score, shape), (second, _) = ranked[0], ranked[1]
    box = fits[shape][1]
    if score < best_any or score < config.recognise_floor or score - second < config.ambiguity_margin:
        shape = UNRECOGNISED
    return Detection(shape, color, box, area, score, tuple(float(v) for v in rgb)), best_any, drawn


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` grown by `radius` pixels (4-neighbour steps)."""
    out = mask
    for _ in range(radius):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _fit_templates(coverage: np.ndarray, origin: tuple[int, int], config: EvalConfig) -> dict:
    """Soft IoU of every template with a coverage map (h, w) in [0, 1].

    A shape's size follows from the covered area and its centre from the centroid (both kept by
    any blur), so each template is drawn where it would have to be, blurred by each of
    `config.blur_sigmas`, and scored by soft IoU (sum of min / sum of max) with the coverage.
    Returns {template name: (best IoU in [0, 1], box (x0, y0, x1, y1) in image pixels, the
    template as drawn at its best blur (h, w) in [0, 1])}; {} when empty.
    """
    total = float(coverage.sum())
    if total <= 0:
        return {}
    h, w = coverage.shape
    ox, oy = origin
    mx = float(coverage.sum(axis=0) @ (np.arange(w) + 0.5)) / total + ox  # centroid in image pixels
    my = float(coverage.sum(axis=1) @ (np.arange(h) + 0.5)) / total + oy
    k = config.world_config.supersample
    xs = ox + ((np.arange(w * k) + 0.5) / k)[None, :]
    ys = oy + ((np.arange(h * k) + 0.5) / k)[:, None]
    out = {}
    for tpl in CLASS_TEMPLATES + OTHER_TEMPLATES:
        unit_area, unit_dy = _unit_moments(tpl, config.world_config)
        r = float(np.sqrt(total / unit_area))  # half the box side
        cx, cy = mx, my - unit_dy * r  # the triangle's centroid sits below its box centre
        m = _template_mask(tpl, xs, ys, cx, cy, 2 * r, config.world_config)
        template = _block_count(m, k).astype(np.float32) / (k * k)  # drawn like world.render: (h, w)
        best, drawn = 0.0, template
        for sigma in config.blur_sigmas:
            t = _blur_matrix(h, sigma) @ template @ _blur_matrix(w, sigma).T if sigma > 0 else template
            inter = float(np.minimum(t, coverage).sum())
            iou = inter / (float(t.sum()) + total - inter)
            if iou > best:
                best, drawn = iou, t
        out[tpl.name] = (best, (cx - r, cy - r, cx + r, cy + r), drawn)
    return out


def _template_mask(
    tpl: Template, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, size: float, world_config: WorldConfig
) -> np.ndarray:
    """Boolean mask of `tpl` with centre (cx, cy) and (unrotated) box side `size` at pixels xs, ys."""
    if tpl.arm is not None:
        world_config = dataclasses.replace(world_config, cross_arm=tpl.arm)
    if tpl.angle == 0 and not tpl.flip:
        return world.shape_mask(tpl.base, xs, ys, cx, cy, size, world_config)
    a = np.deg2rad(tpl.angle)
    dx, dy = xs - cx, ys - cy
    u, v = np.cos(a) * dx - np.sin(a) * dy, np.sin(a) * dx + np.cos(a) * dy
    return world.shape_mask(tpl.base, cx + u, cy + (-v if tpl.flip else v), cx, cy, size, world_config)


@functools.lru_cache(maxsize=1024)
def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix applying a 1-D Gaussian blur of `sigma` pixels, zero beyond the edges."""
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    g = np.exp(-0.5 * (d / sigma) ** 2)
    row = np.exp(-0.5 * (np.arange(-n, n + 1) / sigma) ** 2)
    return (g / row.sum()).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _unit_moments(tpl: Template, world_config: WorldConfig) -> tuple[float, float]:
    """Area and vertical centroid offset of `tpl` with box half-side 1 (so area x r^2 and offset
    x r for half-side r), measured on a fine grid so they follow the world's geometry."""
    n = _MOMENT_GRID
    e = _MOMENT_EXTENT
    g = ((np.arange(n) + 0.5) / n * 2 - 1) * e
    m = _template_mask(tpl, g[None, :], g[:, None], 0.0, 0.0, 2.0, world_config)
    area = m.mean() * (2 * e) ** 2
    dy = float((m.sum(axis=1) @ g) / m.sum())
    return float(area), dy
