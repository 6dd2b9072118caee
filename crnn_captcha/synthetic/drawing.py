"""Random draws, colours, backgrounds, clutter (dots, arcs, strike lines) and distortions."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .config import SynthConfig


# ----- random draws -------------------------------------------------------------------------------
class _Rand:
    """The random draws of one image: scalars from Python's generator (several times faster per
    draw than numpy's), arrays from numpy's; both seeded from one SeedSequence of (seed, index,
    stream), so an image depends on nothing else."""

    __slots__ = ("py", "_seq", "_np")

    def __init__(self, key: tuple[int, ...]):
        self._seq = np.random.SeedSequence(key)
        words = self._seq.generate_state(12)[8:]  # past the words numpy's generator starts from
        self.py = random.Random(int.from_bytes(words.tobytes(), "little"))
        self._np: np.random.Generator | None = None

    def side(self) -> "_Rand":
        """A second stream of scalar draws from the same seed, apart from this one's (no array
        draws): cheaper than a new seed's, whose setting-up is most of a _Rand's cost."""
        other = _Rand.__new__(_Rand)
        other._seq, other._np = None, None
        words = self._seq.generate_state(16)[12:]
        other.py = random.Random(int.from_bytes(words.tobytes(), "little"))
        return other

    @property
    def np(self) -> np.random.Generator:
        if self._np is None:
            self._np = np.random.default_rng(self._seq)
        return self._np

    def u(self, low: float, high: float) -> float:
        return low + (high - low) * self.py.random()

    def i(self, low: int, high: int) -> int:
        """A whole number in [low, high)."""
        return low + int(self.py.random() * (high - low))

    def chance(self, p: float) -> bool:
        return self.py.random() < p

    def pick(self, items: Sequence):
        return items[int(self.py.random() * len(items))]

    def weighted(self, weights: Sequence[float]) -> int:
        x, acc = self.py.random() * float(sum(weights)), 0.0
        for k, w in enumerate(weights):
            acc += w
            if x < acc:
                return k
        return len(weights) - 1


# ----- colours (RGB tuples of floats 0-255) -------------------------------------------------------
Colour = tuple[float, float, float]


TAU = 2 * math.pi


def _luma(c: Colour) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _colour(luma: float, hue: float, sat: float) -> Colour:
    """A colour of about this luma (Rec. 601), hue (radians) and chroma (0 gray, ~110 vivid)."""
    u, v = sat * math.cos(hue), sat * math.sin(hue)
    c = [luma + 1.13983 * v, luma - 0.39465 * u - 0.5806 * v, luma + 2.03211 * u]
    for _ in range(3):  # clipping a channel moves the luma: shift back, clip again
        c = [min(max(x, 0.0), 255.0) for x in c]
        shift = luma - _luma(c)
        c = [x + shift for x in c]
    r, g, b = (min(max(x, 0.0), 255.0) for x in c)
    return (r, g, b)


def _distance(a: Colour, b: Colour) -> float:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2])


@dataclass
class _Scheme:
    bg: Colour           # the background's main colour
    bg2: Colour          # its second colour (gradients, textures, tiles, grids)
    text: list[Colour]   # one colour per character
    spread: float        # how far background luma may stray from bg's without hurting legibility


def _text_luma(r: _Rand, bg_luma: float) -> float:
    """A luma at least 80 levels from the background's, darker or lighter."""
    below, above = bg_luma - 80, bg_luma + 80
    if below >= 0 and (above > 255 or r.chance(0.5)):
        return r.u(0, below)
    return r.u(above, 255)


def _colour_scheme(r: _Rand, cfg: SynthConfig, n: int) -> _Scheme:
    """Background and text colours. Usually 80+ levels of luma apart (light on dark or dark on
    light); with p_low_contrast within 16 levels, so that only the hue tells text from background."""
    per_char = r.chance(cfg.p_char_colours)
    if r.chance(cfg.p_low_contrast):
        yb, hb = r.u(70, 175), r.u(0, TAU)
        bg = _colour(yb, hb, r.u(15, 60))
        bg2 = _colour(yb + r.u(-6, 6), hb + r.u(-0.4, 0.4), r.u(15, 60))
        texts = []
        for _ in range(n if per_char else 1):
            yt, ht, sat = yb + r.u(-16, 16), hb + math.pi + r.u(-1.1, 1.1), r.u(80, 130)
            colour = _colour(yt, ht, sat)
            while _distance(colour, bg) < 140 and sat < 300:  # too close to gray: more chroma
                sat += 40
                colour = _colour(yt, ht, sat)
            texts.append(colour)
        return _Scheme(bg, bg2, texts if per_char else texts * n, 6.0)
    pick = r.py.random()
    yb = r.u(165, 250) if pick < 0.6 else r.u(5, 90) if pick < 0.85 else r.u(90, 165)
    bg = _colour(yb, r.u(0, TAU), r.u(0, 70) * r.py.random())
    bg2 = _colour(min(max(yb + r.u(-25, 25), 0), 255), r.u(0, TAU), r.u(0, 80))
    texts = [_colour(_text_luma(r, yb), r.u(0, TAU), r.u(0, 110) * r.py.random())
             for _ in range(n if per_char else 1)]
    return _Scheme(bg, bg2, texts if per_char else texts * n, 25.0)


def _vivid_colours(r: _Rand, bg: Colour, n: int) -> list[Colour]:
    """One saturated colour per character at any lightness, as generators that pick random RGB
    draw them: some nearly as light as the background (yellow on white), told apart by hue alone."""
    colours = []
    for _ in range(n):
        for _ in range(8):  # a colour too close to the background is drawn again
            colour = _colour(r.u(35, 235), r.u(0, TAU), r.u(90, 150))
            if _distance(colour, bg) >= 130:
                break
        colours.append(colour)
    return colours


def _ink_colour(r: _Rand, sc: _Scheme) -> tuple[int, int, int]:
    """A colour for lines and dots: the text's own (the hard case), or any contrasting one."""
    pick = r.py.random()
    if pick < 0.5:
        c = r.pick(sc.text)
    elif pick < 0.8:
        c = _colour(_text_luma(r, _luma(sc.bg)), r.u(0, TAU), r.u(0, 120))
    else:
        c = (r.u(0, 255), r.u(0, 255), r.u(0, 255))
    return (int(c[0]), int(c[1]), int(c[2]))


# ----- backgrounds --------------------------------------------------------------------------------
def _background(r: _Rand, cfg: SynthConfig, h: int, w: int, sc: _Scheme) -> np.ndarray:
    """A uint8 (h, w, 3) background of one of the configured kinds, with grid lines now and then.
    Each is drawn small and enlarged by OpenCV: a gradient from 2x2 corners, a texture from a few
    cells of colour noise, tiles from a grid of blocks."""
    kinds, weights = zip(*cfg.backgrounds)
    kind = kinds[r.weighted(weights)]
    bg, bg2 = np.array(sc.bg, np.float32), np.array(sc.bg2, np.float32)
    if kind == "solid":
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (int(sc.bg[0] + 0.5), int(sc.bg[1] + 0.5), int(sc.bg[2] + 0.5))
    elif kind == "gradient":
        angle = r.u(0, TAU)
        direction = np.float32([math.cos(angle), math.sin(angle)])
        corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32) @ direction
        t = ((corners - corners.min()) / max(float(np.ptp(corners)), 1e-6)).reshape(2, 2, 1)
        small = np.clip(bg + t * (bg2 - bg) + 0.5, 0, 255).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    elif kind == "texture":
        gh, gw = r.i(2, 7), r.i(3, 16)
        mix = r.np.random((gh, gw, 1), dtype=np.float32)
        wobble = r.np.standard_normal((gh, gw, 3), dtype=np.float32) * np.float32(sc.spread * 0.3)
        small = np.clip(bg + mix * (bg2 - bg) + wobble + 0.5, 0, 255).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    else:  # tiles: blocks in the two colours and their mixture
        gh, gw = r.i(1, 4), r.i(2, 9)
        mix = r.np.integers(0, 3, (gh, gw, 1)).astype(np.float32) / 2
        small = np.clip(bg + mix * (bg2 - bg) + 0.5, 0, 255).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    if r.chance(cfg.p_grid):
        _grid(r, img, sc)
    return img


def _grid(r: _Rand, img: np.ndarray, sc: _Scheme) -> None:
    """Lines behind the text, near the background's luma: a grid, stripes, hatching or random lines."""
    h, w = img.shape[:2]
    luma = _luma(sc.bg) + (1 if r.chance(0.5) else -1) * r.u(0.3, 1.0) * sc.spread * 1.5
    c = _colour(min(max(luma, 0), 255), r.u(0, TAU), r.u(0, 90))
    colour = (int(c[0]), int(c[1]), int(c[2]))
    thick = r.i(1, max(2, h // 30) + 1)
    step = max(3, int(h * r.u(0.08, 0.3)))
    kind = r.py.random()
    if kind < 0.6:  # grid or stripes
        vertical, horizontal = r.chance(0.8), r.chance(0.8)
        for x in range(r.i(0, step), w, step) if vertical else ():
            cv2.line(img, (x, 0), (x, h), colour, thick)
        for y in range(r.i(0, step), h, step) if horizontal or not vertical else ():
            cv2.line(img, (0, y), (w, y), colour, thick)
    elif kind < 0.8:  # hatching
        for x in range(-h, w, step):
            cv2.line(img, (x, 0), (x + h, h), colour, thick, cv2.LINE_AA)
    else:
        for _ in range(r.i(3, 12)):
            cv2.line(img, (r.i(0, w), r.i(0, h)), (r.i(0, w), r.i(0, h)), colour, thick, cv2.LINE_AA)


# ----- clutter and distortion ---------------------------------------------------------------------
def _clutter(r: _Rand, cfg: SynthConfig, img: np.ndarray, box: tuple[int, int, int, int], sc: _Scheme,
             px: float) -> None:
    """Noise dots, arcs, and strike lines through the text box (x0, y0, x1, y1), none of them much
    thicker than the strokes of text of ``px`` pixels per em (which are about px / 10 wide)."""
    h, w = img.shape[:2]
    stroke = max(1, round(px * 0.11))
    if r.chance(cfg.p_dots):
        n = int(h * w * r.u(0.003, 0.04))
        ys, xs = r.np.integers(0, h, n), r.np.integers(0, w, n)
        img[ys, xs] = r.np.integers(0, 256, (n, 3), dtype=np.uint8) if r.chance(0.4) else _ink_colour(r, sc)
        if r.chance(0.4):
            colour = _ink_colour(r, sc)
            for _ in range(r.i(1, max(2, h * w // 300))):
                cv2.circle(img, (r.i(0, w), r.i(0, h)), r.i(1, stroke + 1), colour, -1, cv2.LINE_AA)
    if r.chance(cfg.p_arcs):
        for _ in range(r.i(1, 4)):
            axes = (int(w * r.u(0.1, 0.8)) + 1, int(h * r.u(0.1, 0.8)) + 1)
            start = r.u(0, 360)
            cv2.ellipse(img, (r.i(0, w), r.i(0, h)), axes, r.u(0, 180), start, start + r.u(60, 300),
                        _ink_colour(r, sc), r.i(1, stroke + 1), cv2.LINE_AA)
    if r.chance(cfg.p_strike):
        _strike(r, img, box, sc, stroke)


def _strike(r: _Rand, img: np.ndarray, box: tuple[int, int, int, int], sc: _Scheme, stroke: int) -> None:
    """One or two curved lines through the text, often in the text's own colour (then thinner than
    its strokes, so the characters still show through their own colour)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    s = np.linspace(0, 1, 24)
    for _ in range(1 if r.chance(0.85) else 2):
        left = x0 - r.u(0, 0.15) * w if r.chance(0.7) else 0
        right = x1 + r.u(0, 0.15) * w if r.chance(0.7) else w
        mid = (y0 + y1) / 2 + (y1 - y0) * r.u(-0.3, 0.3)
        tilt = (y1 - y0) * r.u(-0.4, 0.4)
        bend = (y1 - y0) * r.u(0, 0.3) * np.sin(TAU * r.u(0.3, 1.5) * s + r.u(0, TAU))
        pts = np.stack([left + (right - left) * s, mid + tilt * (s - 0.5) + bend], axis=1)
        c, own = sc.text[0], r.chance(0.6)
        colour = (int(c[0]), int(c[1]), int(c[2])) if own else _ink_colour(r, sc)
        thick = r.i(1, (max(1, round(stroke * 0.7)) if own else stroke) + 1)
        cv2.polylines(img, [np.round(pts).astype(np.int32)], False, colour, thick, cv2.LINE_AA)


def _heavy_line(r: _Rand, img: np.ndarray, box: tuple[int, int, int, int], sc: _Scheme, px: float) -> None:
    """A smooth curve across the text as thick as its strokes and in its colour, as many generators
    draw to join the characters."""
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    s = np.linspace(0, 1, 40)
    left, right = x0 - r.u(0, 0.1) * w, x1 + r.u(0, 0.1) * w
    mid, amp = (y0 + y1) / 2 + (y1 - y0) * r.u(-0.25, 0.25), (y1 - y0) * r.u(0.1, 0.4)
    ys = mid + amp * np.sin(TAU * r.u(0.3, 1.2) * s + r.u(0, TAU))
    pts = np.stack([left + (right - left) * s, ys], axis=1)
    c = sc.text[0]
    thick = max(1, round(px * r.u(0.05, 0.09)))
    cv2.polylines(img, [np.round(pts).astype(np.int32)], False, (int(c[0]), int(c[1]), int(c[2])), thick, cv2.LINE_AA)


def _inverting_line(r: _Rand, img: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int],
                    sc: _Scheme, px: float) -> None:
    """A thick curve across the text that swaps its colours: in the text's colour over the
    background, in the background's colour where it crosses a stroke (as sites that draw the line
    in XOR mode do), or now and then only the cut through the strokes. ``alpha`` is the text's
    coverage on the image, (h, w) in [0, 1]."""
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    s = np.linspace(0, 1, 40)
    left = x0 - r.u(0, 0.3) * w if r.chance(0.6) else x0 + r.u(0, 0.3) * (x1 - x0)
    right = x1 + r.u(0, 0.3) * w if r.chance(0.6) else x1 - r.u(0, 0.3) * (x1 - x0)
    mid, amp = y0 + (y1 - y0) * r.u(0.15, 0.7), (y1 - y0) * r.u(0.05, 0.45)
    ys = mid + amp * np.sin(TAU * r.u(0.2, 0.8) * s + r.u(0, TAU)) + (y1 - y0) * r.u(-0.3, 0.3) * (s - 0.5)
    line = np.zeros((h, w), np.uint8)
    pts = np.stack([left + (right - left) * s, ys], axis=1)
    cv2.polylines(line, [np.round(pts).astype(np.int32)], False, 255, max(1, round(px * r.u(0.05, 0.14))),
                  cv2.LINE_AA)
    m = line.astype(np.float32) / 255
    if r.chance(0.3):
        m *= alpha  # only the cut through the strokes
    text, bg = np.array(sc.text[0], np.float32), np.array(sc.bg, np.float32)
    swapped = alpha[..., None] * bg + (1 - alpha[..., None]) * text
    img[:] = np.clip(img * (1 - m[..., None]) + swapped * m[..., None] + 0.5, 0, 255).astype(np.uint8)


def _scratches(r: _Rand, img: np.ndarray, sc: _Scheme, px: float) -> None:
    """Many short straight strokes scattered over the whole image, over the text too, as generators
    that draw interference segments do: one colour, thin, most often all near one slant."""
    h, w = img.shape[:2]
    slant = r.u(0, np.pi) if r.chance(0.6) else None
    colour = _ink_colour(r, sc)
    thick = max(1, round(min(px * 0.045, h * r.u(0.01, 0.035))))  # thinner than the text's strokes
    for _ in range(max(4, round(w / h * r.u(4, 16)))):
        angle = slant + r.u(-0.4, 0.4) if slant is not None else r.u(0, np.pi)
        half = h * r.u(0.08, 0.25)
        cx, cy = r.u(0, w), r.u(0, h)
        dx, dy = half * np.cos(angle), half * np.sin(angle)
        cv2.line(img, (round(cx - dx), round(cy - dy)), (round(cx + dx), round(cy + dy)), colour, thick, cv2.LINE_AA)


_NOISE: list[np.ndarray] = []


def _noise_tile() -> np.ndarray:
    """A fixed field of standard normal noise (the same in every process), sliced at random
    offsets: much faster than fresh normal numbers for every pixel."""
    if not _NOISE:
        _NOISE.append(np.random.default_rng(20240611).standard_normal((320, 1280, 3), dtype=np.float32))
    return _NOISE[0]


def _distort(r: _Rand, cfg: SynthConfig, img: np.ndarray, px: float, hue_only: bool) -> np.ndarray:
    """Whole-image geometry (affine, warps), then low resolution, blur, noise and JPEG artefacts.
    The geometry stays small enough that text inside the margins stays inside the canvas, and
    the resolution and blur keep text of ``px`` pixels per em readable. Text told from its
    background by ``hue_only`` is spared low resolution and strong JPEG, whose coarse colour
    sampling would erase it."""
    h, w = img.shape[:2]
    if r.chance(cfg.p_affine):
        tilt = math.degrees(math.atan(0.1 * h / w))  # the line's ends move at most 5% of the height
        m = cv2.getRotationMatrix2D((w / 2, h / 2), r.u(-tilt, tilt), r.u(0.95, 1.03))
        shear = r.u(-0.12, 0.12)
        m[0, 1] += shear
        m[0, 2] -= shear * h / 2  # shear about the middle row, so the text stays in place
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if r.chance(cfg.p_warp):
        if r.chance(0.55):
            img = _sine_warp(img, h * r.u(0.02, 0.05), h * r.u(0.6, 2.5), r.u(0, TAU), cv2.BORDER_REPLICATE)
        else:
            img = _mesh_warp(r, img)
    if r.chance(cfg.p_lowres) and px > 16 and not hue_only:
        f = r.u(max(0.35, 12 / px), 0.8)  # never below about 12 pixels per em
        small = cv2.resize(img, (max(4, round(w * f)), max(4, round(h * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST if r.chance(0.4) else cv2.INTER_LINEAR)
    if r.chance(cfg.p_blur):
        img = _blur(r, img, px)
    if r.chance(cfg.p_noise):
        tile = _noise_tile()
        th, tw = tile.shape[:2]
        if h > th or w > tw:
            tile = np.tile(tile, (h // th + 1, w // tw + 1, 1))
            th, tw = tile.shape[:2]
        oy, ox = r.i(0, th - h + 1), r.i(0, tw - w + 1)
        noisy = img + tile[oy:oy + h, ox:ox + w] * np.float32(r.u(3, 18))
        img = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    if r.chance(cfg.p_jpeg):
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, r.i(45, 90) if hue_only else r.i(10, 70)])
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else img
    return img


def _binarise(img: np.ndarray, dark_text: bool) -> np.ndarray:
    """Black text on white (Otsu's threshold of the luma), as sites that serve 1-bit images draw."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    kind = cv2.THRESH_BINARY if dark_text else cv2.THRESH_BINARY_INV
    _, bw = cv2.threshold(grey, 0, 255, kind | cv2.THRESH_OTSU)
    return cv2.cvtColor(bw, cv2.COLOR_GRAY2RGB)


def _blur(r: _Rand, img: np.ndarray, px: float) -> np.ndarray:
    """Gaussian blur, or (a third of the time) motion blur along a random direction; at most
    about as wide as the strokes of text of ``px`` pixels per em."""
    if r.chance(0.67):
        return cv2.GaussianBlur(img, (0, 0), r.u(0.3, max(0.5, px * 0.035)))
    size = 2 * r.i(1, max(2, round(px * 0.06)) + 1) + 1
    kernel = np.zeros((size, size), np.float32)
    angle = r.u(0, math.pi)
    half = (size - 1) / 2
    end = (half * math.cos(angle), half * math.sin(angle))
    cv2.line(kernel, (round(half - end[0]), round(half - end[1])), (round(half + end[0]), round(half + end[1])), 1.0)
    return cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1.0))


def _mesh_warp(r: _Rand, img: np.ndarray) -> np.ndarray:
    """A smooth random displacement: a coarse grid of offsets, interpolated to every pixel."""
    h, w = img.shape[:2]
    gw = max(3, round(w / h * 1.5))
    coarse = (r.np.random((3, gw, 2), dtype=np.float32) * 2 - 1) * np.float32(h * r.u(0.02, 0.05))
    dx, dy = cv2.split(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC))
    map_x = dx + np.arange(w, dtype=np.float32)[None, :]
    map_y = dy + np.arange(h, dtype=np.float32)[:, None]
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _sine_warp(img: np.ndarray, amp: float, period: float, phase: float, border: int) -> np.ndarray:
    """Columns move up and down, and rows (half as far) sideways, along sine waves of ``period`` px."""
    h, w = img.shape[:2]
    k = np.float32(TAU / max(period, 2.0))
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    map_x = np.broadcast_to(xs[None, :] + (np.float32(amp * 0.5) * np.sin(ys * k + np.float32(phase)))[:, None], (h, w))
    map_y = np.broadcast_to(ys[:, None] + (np.float32(amp) * np.sin(xs * k + np.float32(phase * 1.7)))[None, :], (h, w))
    return cv2.remap(img, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y), cv2.INTER_LINEAR,
                     borderMode=border)


