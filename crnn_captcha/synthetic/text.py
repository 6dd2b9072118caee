"""The text layer: sizes, styles (outlines, hollow, bold), placement and the glyphs' paste."""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .config import SynthConfig
from .drawing import TAU, Colour, _colour, _luma, _Rand, _Scheme, _sine_warp
from .fonts import FontInfo, _glyph_mask

# ----- the text -----------------------------------------------------------------------------------
#: Font sizes (pixels per em) glyphs are rendered at: a ladder 7% apart, so the glyph cache is hit
#: often; the text layer is then scaled to its exact size.
_PX_LADDER = sorted({round(8 * 1.07 ** k) for k in range(52)})


#: Text is not drawn smaller than this many pixels per em (capitals about 11 pixels high, lowercase
#: about 8) unless the canvas cannot widen enough to hold it.
MIN_PX = 15


def _ladder(px: float) -> int:
    """The largest ladder size not above ``px`` (the smallest one for tiny sizes)."""
    k = bisect.bisect_right(_PX_LADDER, px) - 1
    return _PX_LADDER[max(k, 0)]


@dataclass
class _Style:
    px: int              # pixels per em
    thick: int           # OpenCV stroke thickness
    weight: int          # > 0: strokes grown by this radius; < 0: thinned
    outline: int         # > 0: hollow characters with rims this wide
    rotation: float      # the largest per-character rotation (degrees)
    shear: float
    stretch: float       # horizontal scale
    gap: float           # space between characters' boxes, in em (negative: overlap)
    jitter: float        # vertical jitter, in em
    wave: tuple[float, float, float]  # baseline sine: amplitude (em), period (characters), phase
    warp: float          # per-character sine warp amplitude, in em


def _text_style(r: _Rand, cfg: SynthConfig, px: float) -> _Style:
    px = _ladder(px)
    bold = r.chance(cfg.p_bold)
    thin = not bold and px >= 24 and r.chance(cfg.p_thin)
    weight = max(1, round(px * r.u(0.02, 0.06))) if bold else (-1 if thin else 0)
    thick = 1 if r.chance(0.5) else max(1, round(px * r.u(0.04, 0.1)))
    outline = max(1, round(px * r.u(0.03, 0.06))) if px >= 22 and r.chance(cfg.p_outline) else 0
    rotation = cfg.max_rotation * r.u(0.2, 1.0) if r.chance(cfg.p_rotation) else 0.0
    shear = r.u(-0.35, 0.35) if r.chance(cfg.p_shear) else 0.0
    stretch = r.u(0.75, 1.3) if r.chance(cfg.p_stretch) else 1.0
    gap = r.u(-0.12, 0.25) if r.chance(0.85) else r.u(0.25, 0.6)
    jitter = r.u(0.02, 0.12) if r.chance(cfg.p_jitter) else 0.0
    wave = (r.u(0.05, 0.15), r.u(3, 8), r.u(0, TAU)) if r.chance(cfg.p_wave) else (0.0, 1.0, 0.0)
    warp = r.u(0.03, 0.07) if r.chance(cfg.p_char_warp) else 0.0
    return _Style(px, thick, weight, outline, rotation, shear, stretch, gap, jitter, wave, warp)


def _restroke(mask: np.ndarray, base: int, st: _Style) -> tuple[np.ndarray, int]:
    """The style's weight and outline applied to a glyph mask (padded first, so strokes can grow)."""
    grow = max(st.weight, 0) + st.outline
    if grow:
        mask = cv2.copyMakeBorder(mask, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0)
        base += grow
    if st.weight > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * st.weight + 1,) * 2))
    elif st.weight < 0:
        mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
    if st.outline:
        inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * st.outline + 1,) * 2))
        mask = cv2.subtract(cv2.dilate(mask, np.ones((3, 3), np.uint8)), inner)
    return mask, base


def _styled_glyph(r: _Rand, font: FontInfo, ch: str, st: _Style) -> tuple[np.ndarray, float]:
    """One character's mask with the style's weight, outline, rotation, shear, stretch and warp,
    cropped to its ink; and the height of its centre relative to the baseline (negative: above)."""
    mask, base = _restroke(*_glyph_mask(font, st.px, ch, st.thick), st)
    h, w = mask.shape
    centre = h / 2 - base
    angle = math.radians(r.u(-st.rotation, st.rotation)) if st.rotation else 0.0
    if angle or st.shear or st.stretch != 1.0:
        sx, cos, sin = st.stretch * r.u(0.92, 1.08), math.cos(angle), math.sin(angle)
        # rotation after shear and horizontal scale, about the glyph's centre
        lin = np.array([[cos * sx, -cos * st.shear - sin], [sin * sx, -sin * st.shear + cos]])
        ext = np.abs(lin) @ np.array([w, h], float)  # the transformed box's width and height
        ow, oh = int(math.ceil(ext[0])) + 2, int(math.ceil(ext[1])) + 2
        shift = np.array([ow / 2, oh / 2]) - lin @ np.array([w / 2, h / 2])
        mask = cv2.warpAffine(mask, np.hstack([lin, shift[:, None]]), (ow, oh), flags=cv2.INTER_LINEAR)
        h, w = oh, ow
    if st.warp:
        mask = _sine_warp(mask, st.warp * st.px, r.u(0.5, 1.5) * st.px, r.u(0, TAU), cv2.BORDER_CONSTANT)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) and (len(rows) < h or len(cols) < w):
        centre += (rows[0] + rows[-1] + 1) / 2 - h / 2
        mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return mask, centre


def _perspective(r: _Rand, mask: np.ndarray, centre: float, amount: float) -> tuple[np.ndarray, float]:
    """A glyph mask seen at a slant of its own: each corner moved by up to ``amount`` of the glyph's
    size, as generators warp each character with a random quadrilateral; cropped to its ink again."""
    h, w = mask.shape
    pad = int(math.ceil(amount * max(h, w))) + 1
    mask = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    src = np.float32([[pad, pad], [pad + w, pad], [pad + w, pad + h], [pad, pad + h]])
    moves = np.float32([[r.u(-amount, amount) * w, r.u(-amount, amount) * h] for _ in range(4)])
    out = cv2.warpPerspective(mask, cv2.getPerspectiveTransform(src, src + moves), mask.shape[::-1],
                              flags=cv2.INTER_LINEAR)
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    if not len(rows):  # folded to nothing: keep the glyph as it was
        return mask[pad:pad + h, pad:pad + w], centre
    centre += (rows[0] + rows[-1] + 1) / 2 - (pad + h / 2)
    return out[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], centre


@dataclass
class _Layer:
    """Text on its own: coverage ``alpha`` (h, w) in [0, 1], and its colour, either one ``colour``
    or a premultiplied ``rgb`` (h, w, 3) field (several colours)."""

    alpha: np.ndarray
    colour: Colour
    rgb: np.ndarray | None = None

    def scaled(self, f: float, fy: float | None = None) -> "_Layer":
        """The layer resized by ``f`` across and ``fy`` (default ``f``) down."""
        h, w = self.alpha.shape
        fy = f if fy is None else fy
        size = (max(1, round(w * f)), max(1, round(h * fy)))
        how = cv2.INTER_AREA if max(f, fy) <= 1 else cv2.INTER_LINEAR  # area averaging only shrinks well
        rgb = None if self.rgb is None else cv2.resize(self.rgb, size, interpolation=how)
        return _Layer(cv2.resize(self.alpha, size, interpolation=how), self.colour, rgb)


def _text_layer(r: _Rand, glyphs: list[tuple[np.ndarray, float]], colours: list[Colour],
                st: _Style) -> tuple[_Layer, list[tuple[int, int, int, int]]]:
    """The characters side by side on a layer just large enough, and each one's box (x0, y0, x1, y1)."""
    xs, x = [], 0.0
    widths = [m.shape[1] for m, _ in glyphs] + [0]
    for k, (mask, _) in enumerate(glyphs):
        xs.append(x)
        step = widths[k] + st.px * (st.gap + r.u(-0.05, 0.05))
        # overlap at most a quarter of the narrower neighbour, so neither hides behind the other
        x += max(step, widths[k] - 0.25 * min(widths[k], widths[k + 1] or widths[k]))
    amp, period, phase = st.wave
    tops = [cy - m.shape[0] / 2 + st.px * (st.jitter * r.u(-1, 1) + amp * math.sin(TAU * k / period + phase))
            for k, (m, cy) in enumerate(glyphs)]
    lift = min(tops)
    boxes = [(int(x0 + 0.5), int(t - lift + 0.5), int(x0 + 0.5) + m.shape[1], int(t - lift + 0.5) + m.shape[0])
             for x0, t, (m, _) in zip(xs, tops, glyphs)]
    shape = (max(b[3] for b in boxes), max(b[2] for b in boxes))
    alpha = np.zeros(shape, np.float32)
    one_colour = all(c == colours[0] for c in colours)
    rgb = None if one_colour else np.zeros(shape + (3,), np.float32)
    for (mask, _), (x0, y0, x1, y1), colour in zip(glyphs, boxes, colours):
        a = mask.astype(np.float32) * np.float32(1 / 255)
        keep = 1 - a
        if rgb is not None:  # "over" with premultiplied colour: later characters cover earlier ones
            region = rgb[y0:y1, x0:x1]
            region *= keep[..., None]
            region += a[..., None] * np.array(colour, np.float32)
        region = alpha[y0:y1, x0:x1]
        region *= keep
        region += a
    return _Layer(alpha, colours[0], rgb), boxes


def _gradient_fill(r: _Rand, layer: _Layer) -> None:
    """Recolour one-colour text with a gradient along the line to another colour of about the
    same luma (so the contrast with the background stays)."""
    start = np.array(layer.colour, np.float32)
    end = np.array(_colour(_luma(layer.colour) + r.u(-10, 10), r.u(0, TAU), r.u(30, 110)), np.float32)
    t = np.linspace(0, 1, layer.alpha.shape[1], dtype=np.float32)[None, :, None]
    layer.rgb = layer.alpha[..., None] * (start + t * (end - start))


def _box_on(img: np.ndarray, layer: _Layer, x: int, y: int) -> tuple[int, int, int, int]:
    """Where the layer pasted at (x, y) lies on the image: (x0, y0, x1, y1), cut to the image."""
    h, w = img.shape[:2]
    return max(x, 0), max(y, 0), min(x + layer.alpha.shape[1], w), min(y + layer.alpha.shape[0], h)


def _coverage(img: np.ndarray, layer: _Layer, x: int, y: int) -> np.ndarray:
    """The layer's coverage as pasted at (x, y) on the image: (h, w) float32 in [0, 1]."""
    out = np.zeros(img.shape[:2], np.float32)
    x0, y0, x1, y1 = _box_on(img, layer, x, y)
    if x0 < x1 and y0 < y1:
        out[y0:y1, x0:x1] = layer.alpha[y0 - y:y1 - y, x0 - x:x1 - x]
    return out


def _paste(img: np.ndarray, layer: _Layer, x: int, y: int) -> None:
    """Composite the layer onto the uint8 image at (x, y), clipped to the image."""
    x0, y0, x1, y1 = _box_on(img, layer, x, y)
    if x0 >= x1 or y0 >= y1:
        return
    a = layer.alpha[y0 - y:y1 - y, x0 - x:x1 - x]
    region = img[y0:y1, x0:x1]
    if layer.rgb is None:
        colour = np.empty_like(region)
        colour[:] = (int(layer.colour[0] + 0.5), int(layer.colour[1] + 0.5), int(layer.colour[2] + 0.5))
        region[:] = cv2.blendLinear(colour, region, a, 1 - a)  # one pass in OpenCV
    else:
        out = layer.rgb[y0 - y:y1 - y, x0 - x:x1 - x] + region.astype(np.float32) * (1 - a)[..., None]
        region[:] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _extrude(r: _Rand, img: np.ndarray, layer: _Layer, x: int, y: int, sc: _Scheme) -> None:
    """3D text: copies of the text stacked one pixel apart along a diagonal, in a shade between text
    and background that darkens toward the front (the text itself is pasted over them later)."""
    depth = r.i(2, max(3, round(layer.alpha.shape[0] * 0.12)) + 1)
    dx, dy = r.pick(((1, 1), (-1, 1), (1, -1), (-1, -1)))
    text, bg = np.array(sc.text[0], np.float32), np.array(sc.bg, np.float32)
    for k in range(depth, 0, -1):
        shade = bg + (text - bg) * (0.35 + 0.35 * (depth - k) / depth)
        _paste(img, _Layer(layer.alpha, tuple(shade)), x + k * dx, y + k * dy)


def _shadow(r: _Rand, img: np.ndarray, layer: _Layer, x: int, y: int, sc: _Scheme) -> None:
    """A copy of the text in a colour halfway between background and text, a few pixels off."""
    c = tuple((a + b) / 2 for a, b in zip(sc.bg, sc.text[0]))
    d = max(1, round(layer.alpha.shape[0] * 0.06))
    _paste(img, _Layer(layer.alpha, c), x + r.i(-d, d + 1), y + r.i(1, d + 1))


