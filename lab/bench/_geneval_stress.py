"""Stress images for `lab bench geneval`, drawn by code independent of `lab.world`'s renderer.

Only the world's palette and geometry conventions are shared (box side `size`, cross arms 0.35 of
the half-size, triangle apex up); shapes are polygons tested point-in-polygon on an 8x8 sub-pixel
grid, so a renderer bug cannot hide an evaluator bug.

- `touching_cases`: pairs and groups of 3-4 objects whose boxes are `gap` pixels apart (0 = touching);
- `junk_images`: Gaussian noise, blurred noise, uniform colour frames (no object at all);
- `odd_shape_cases`: shapes the world never draws (squares rotated 15-45 deg, an X, a thick plus,
  an upside-down triangle), which must never pass a prompt naming a class.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lab.world import COLORS, IMAGE_SIZE, SHAPES, make_prompt

SUPERSAMPLE = 8  # sub-pixels per pixel side (the world's renderer uses 4)
CROSS_ARM = 0.35  # the world's cross: arm half-width / half-size
THICK_ARM = 0.65  # a "thick plus": arms much wider than the world's cross
MIN_SIZE, MAX_SIZE = 14.0, 22.0  # box sides, pixels (the world's range)
BORDER = 2.0  # pixels between an object's box and the image edge
ODD_SHAPES = (
    "square rotated 15",
    "square rotated 30",
    "square rotated 45",
    "X cross",
    "thick plus",
    "upside-down triangle",
)
JUNK_KINDS = ("gaussian noise", "blurred noise", "uniform frame")
NOISE_SIGMAS = (0.1, 0.25, 0.5)  # per-channel std of noise frames around grey 0.5
NOISE_BLURS = (1.0, 2.0, 3.0)  # pixels; blurred noise is stretched back to the noise's contrast
NEIGHBOUR_OFFSET = 0.25  # a neighbour is shifted along the other axis by up to this x the smaller side
ROTATION_JITTER = 5.0  # degrees around each named rotation of a square
_TOLERANCE = 1e-6  # pixels: boxes exactly `gap` apart count as apart


def _polygons(shape: str, r: float, angle: float = 0.0, flip: bool = False, arm: float = CROSS_ARM) -> list[np.ndarray]:
    """Convex polygons (k, 2) (x, y offsets from the centre, y down) whose union is `shape` of half-size `r`."""
    if shape == "square":
        polys = [np.array([[-r, -r], [r, -r], [r, r], [-r, r]])]
    elif shape == "triangle":
        polys = [np.array([[0, -r], [r, r], [-r, r]])]
    elif shape == "cross":
        a = arm * r
        polys = [np.array([[-a, -r], [a, -r], [a, r], [-a, r]]), np.array([[-r, -a], [r, -a], [r, a], [-r, a]])]
    else:
        raise ValueError(f"no polygon for {shape!r}")
    t = np.deg2rad(angle)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    polys = [p @ rot.T for p in polys]
    return [p * np.array([1, -1]) for p in polys] if flip else polys


def _inside_convex(poly: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Points on the inner side of every edge of a convex polygon (either winding)."""
    signs = []
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):
        signs.append((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0))
    s = np.stack(signs)
    return (s >= 0).all(0) | (s <= 0).all(0)


def draw(objects: list[tuple], image: np.ndarray | None = None) -> np.ndarray:
    """Paints objects `(shape, colour, cx, cy, size[, angle, flip, arm])` (pixels) on a white image.
    Returns (64, 64, 3) uint8; coverage = fraction of the 8x8 sub-pixels inside."""
    img = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 255.0) if image is None else image.astype(np.float64)
    sub = (np.arange(IMAGE_SIZE * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    for shape, color, cx, cy, size, *extra in objects:
        dx, dy = sub[None, :] - cx, sub[:, None] - cy
        if shape == "circle":
            mask = dx * dx + dy * dy <= (size / 2) ** 2
        else:
            mask = np.zeros((sub.size, sub.size), bool)
            for p in _polygons(shape, size / 2, *extra):
                mask |= _inside_convex(p, dx, dy)
        cover = mask.reshape(IMAGE_SIZE, SUPERSAMPLE, IMAGE_SIZE, SUPERSAMPLE).mean((1, 3))[..., None]
        img = img * (1 - cover) + np.asarray(COLORS[color], np.float64) * cover
    return np.round(img).astype(np.uint8)


def _apart(a: tuple, b: tuple, gap: float) -> bool:
    """Boxes (x0, y0, x1, y1) at least `gap` pixels apart on some axis (a hair of tolerance)."""
    t = _TOLERANCE
    return a[2] + gap <= b[0] + t or b[2] + gap <= a[0] + t or a[3] + gap <= b[1] + t or b[3] + gap <= a[1] + t


def _box(cx: float, cy: float, size: float) -> tuple:
    return (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)


def _group(
    n: int, gap: float, rng: np.random.Generator, max_tries: int = 500
) -> list[tuple[float, float, float]] | None:
    """`n` boxes (cx, cy, size), each placed `gap` pixels beside an earlier one (left/right/above/below,
    offset along the other axis by up to NEIGHBOUR_OFFSET of a side) and at least `gap` from all the others."""
    lo, hi = BORDER, IMAGE_SIZE - BORDER
    for _ in range(max_tries):
        s = rng.uniform(MIN_SIZE, MAX_SIZE)
        placed = [(rng.uniform(lo + s / 2, hi - s / 2), rng.uniform(lo + s / 2, hi - s / 2), s)]
        for _ in range(n - 1):
            for _ in range(max_tries):
                cx0, cy0, s0 = placed[rng.integers(len(placed))]
                s = rng.uniform(MIN_SIZE, MAX_SIZE)
                along = (s0 + s) / 2 + gap
                side = rng.integers(4)
                off = rng.uniform(-NEIGHBOUR_OFFSET, NEIGHBOUR_OFFSET) * min(s, s0)
                cx, cy = [
                    (cx0 - along, cy0 + off),
                    (cx0 + along, cy0 + off),
                    (cx0 + off, cy0 - along),
                    (cx0 + off, cy0 + along),
                ][side]
                b = _box(cx, cy, s)
                if (
                    b[0] >= lo
                    and b[1] >= lo
                    and b[2] <= hi
                    and b[3] <= hi
                    and all(_apart(b, _box(*p), gap) for p in placed)
                ):
                    placed.append((cx, cy, s))
                    break
            else:
                break
        if len(placed) == n:
            return placed
    return None


def touching_cases(gap: float, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, object]]:
    """`n` (image (64, 64, 3) uint8, true prompt) pairs: half pairs, half groups of 3-4, boxes `gap`
    pixels apart. Pairs of one class (half of them one colour) are judged on "two {class}s", pairs of
    two classes on "a photo of a {c1} {A} and a {c2} {B}"; groups are one class, "three/four {class}s"."""
    colors = list(COLORS)
    out = []
    while len(out) < n:
        k = 2 if len(out) < n // 2 else int(rng.integers(3, 5))
        boxes = _group(k, gap, rng)
        if boxes is None:
            continue
        if k == 2 and rng.random() < 0.5:
            a, b = rng.choice(len(SHAPES), 2, replace=False)
            ca, cb = rng.choice(len(colors), 2, replace=False)
            shapes, cols = [SHAPES[a], SHAPES[b]], [colors[ca], colors[cb]]
            prompt = make_prompt("color_attr", tuple(shapes), tuple(cols))
        else:
            shape = SHAPES[rng.integers(len(SHAPES))]
            same = rng.random() < 0.5
            cols = (
                [colors[rng.integers(len(colors))]] * k
                if same
                else [colors[i] for i in rng.integers(len(colors), size=k)]
            )
            shapes = [shape] * k
            prompt = make_prompt("counting", (shape,), count=k)
        out.append((draw([(s, c, cx, cy, size) for s, c, (cx, cy, size) in zip(shapes, cols, boxes)]), prompt))
    return out


def junk_images(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` images (n, 64, 64, 3) float32 in [0, 1] with no object: `kind` in JUNK_KINDS."""
    shape = (n, IMAGE_SIZE, IMAGE_SIZE, 3)
    if kind == "gaussian noise":
        sig = rng.choice(NOISE_SIGMAS, size=(n, 1, 1, 1))
        return np.clip(0.5 + sig * rng.standard_normal(shape), 0, 1).astype(np.float32)
    if kind == "blurred noise":
        out = []
        for _ in range(n):
            sig, blur = rng.choice(NOISE_SIGMAS), rng.choice(NOISE_BLURS)
            z = ndimage.gaussian_filter(rng.standard_normal(shape[1:]), (blur, blur, 0))
            out.append(np.clip(0.5 + sig * z / z.std(), 0, 1))
        return np.stack(out).astype(np.float32)
    if kind == "uniform frame":  # half random colours, half the palette's own colours and greys
        rgb = rng.random((n, 3))
        palette = np.array(list(COLORS.values()) + [(128, 128, 128), (200, 200, 200)]) / 255
        pick = rng.random(n) < 0.5
        rgb[pick] = palette[rng.integers(len(palette), size=int(pick.sum()))]
        return np.broadcast_to(rgb[:, None, None, :], shape).astype(np.float32)
    raise ValueError(f"unknown junk kind {kind!r}; expected one of {JUNK_KINDS}")


def odd_shape_cases(name: str, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`n` images (64, 64, 3) uint8 of one shape the world never draws (`name` in ODD_SHAPES),
    random colour, size and place; rotated squares take +-(angle +- 5 deg) at random."""
    colors = list(COLORS)
    out = []
    for _ in range(n):
        size = rng.uniform(MIN_SIZE, MAX_SIZE)
        reach = size / 2 * np.sqrt(2)  # a rotated square's half-diagonal
        cx, cy = rng.uniform(BORDER + reach, IMAGE_SIZE - BORDER - reach, 2)
        color = colors[rng.integers(len(colors))]
        if name.startswith("square rotated"):
            angle = float(name.split()[-1]) + rng.uniform(-ROTATION_JITTER, ROTATION_JITTER)
            obj = ("square", color, cx, cy, size, angle * rng.choice([-1, 1]))
        elif name == "X cross":
            obj = ("cross", color, cx, cy, size, 45.0)
        elif name == "thick plus":
            obj = ("cross", color, cx, cy, size, 0.0, False, THICK_ARM)
        elif name == "upside-down triangle":
            obj = ("triangle", color, cx, cy, size, 0.0, True)
        else:
            raise ValueError(f"unknown odd shape {name!r}; expected one of {ODD_SHAPES}")
        out.append(draw([obj]))
    return out
