"""The renderer: a synthetic captcha or glyph, every random choice seeded by ``(seed, index)``."""
from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ..errors import OptionError
from .config import GLYPH_SIZE, SYMBOLS, SynthConfig
from .drawing import (_background, _binarise, _clutter, _colour_scheme, _distort, _heavy_line,
                      _inverting_line, _Rand, _scratches, _vivid_colours)
from .fonts import FontInfo, discover_fonts
from .text import (
    MIN_PX,
    _Layer,
    _box_on,
    _coverage,
    _gradient_fill,
    _paste,
    _perspective,
    _extrude,
    _shadow,
    _styled_glyph,
    _text_layer,
    _text_style,
)

                         # (small where only the hue separates text from background)


#: The styles added after the first renderer, each turned on by ``SynthConfig.p_<name>``.
EXTRAS = ("one_case", "tall", "crowded", "condensed", "extrude", "heavy_line", "binarise", "vivid",
          "perspective", "scratches", "cropped", "inverting_line", "centred")


def _ink_rows(layer: _Layer) -> tuple[int, int]:
    """The first and last rows of the layer that hold ink (its whole height where none does)."""
    rows = np.flatnonzero(layer.alpha.max(axis=1) > 0.3)
    return (int(rows[0]), int(rows[-1])) if rows.size else (0, layer.alpha.shape[0] - 1)


def _fit_within(layer: _Layer, boxes: list, h: int, w: int, fill: tuple[float, float], widest: float,
                px: float):
    """The text layer shrunk (never enlarged) to fit within ``fill`` (height, width shares) of an
    ``h`` x ``w`` canvas; where that leaves characters under MIN_PX pixels per em (``px`` before
    shrinking), the canvas widens (up to ``widest`` times its height) instead. Returns the layer,
    its characters' boxes, the canvas width and the scale."""
    (lh, lw), (fill_h, fill_w) = layer.alpha.shape, fill
    scale = min(1.0, fill_h * h / lh, fill_w * w / lw)
    if scale * px < MIN_PX:  # too small to read: widen the canvas
        scale = min(1.0, MIN_PX / px, 0.9 * h / lh)
        w = max(w, min(math.ceil(lw * scale / fill_w), round(h * widest)))
        scale = min(scale, 0.94 * w / lw)
    if scale < 0.98:
        layer = layer.scaled(scale)
        boxes = [tuple(round(v * scale) for v in b) for b in boxes]
    return layer, boxes, w, scale


def _fill_height(layer: _Layer, boxes: list, h: int, w: int, fill: tuple[float, float], widest: float,
                 px: float = 0.0):
    """The text layer sized to fill ``fill`` (height, width shares) of an ``h`` x ``w`` canvas, as
    sites that fit their text to the image draw it: to the height first, then narrowed to the width
    (down to 55% of its shape's width, as a condensed face), and where that is not enough the canvas
    widens (up to ``widest`` times its height) before the whole text shrinks. Returns the layer,
    its characters' boxes, the canvas width and the vertical scale (``px``, the size the layer was
    drawn at, is :func:`_fit_within`'s; filled text is never too small)."""
    (lh, lw), (fill_h, fill_w) = layer.alpha.shape, fill
    sy = fill_h * h / lh
    sx = max(min(sy, fill_w * w / lw), 0.55 * sy)
    if lw * sx > fill_w * w:
        w = max(w, min(math.ceil(lw * sx / fill_w), round(h * widest)))
        shrink = min(1.0, fill_w * w / (lw * sx))
        sx, sy = sx * shrink, sy * shrink
    boxes = [(round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)) for x0, y0, x1, y1 in boxes]
    return layer.scaled(sx, sy), boxes, w, sy


# ----- animations ---------------------------------------------------------------------------------
@dataclass
class Animation:
    """An animated captcha: its frames (uint8 (H, W, 3) RGB, all one size), its label, and the
    fusion of frames (see ``crnn_captcha.read.images.FRAME_FUSIONS``) that shows its text whole."""

    frames: list[np.ndarray]
    text: str
    fusion: str


def _fade_plan(a: _Rand, chars: int, count: int) -> np.ndarray:
    """(count, chars) opacities: each character fully drawn in a run of frames of its own (at least
    one, never all when there are several characters), half drawn in the frames beside the run,
    absent elsewhere."""
    plan = np.zeros((count, chars))
    for c in range(chars):
        length = a.i(1, max(2, count - 1))
        start = a.i(0, count)
        for k in range(-1, length + 1):
            plan[(start + k) % count, c] = max(plan[(start + k) % count, c], 1.0 if 0 <= k < length else 0.5)
    return plan


def _faded(layer: _Layer, boxes: list[tuple[int, int, int, int]], opacity: np.ndarray) -> _Layer:
    """The text layer with each character's box at its opacity (where boxes overlap, the later wins)."""
    scale = np.ones_like(layer.alpha)
    for (x0, _, x1, _), o in zip(boxes, opacity):
        scale[:, max(0, x0):max(0, x1)] = o
    return _Layer(layer.alpha * scale, layer.colour, None if layer.rgb is None else layer.rgb * scale[..., None])


# ----- the renderer -------------------------------------------------------------------------------
#: Character classes a label sometimes keeps to, as many captcha families do (digits alone the most
#: often, as many sites draw them).
_CLASSES = (string.digits, string.digits, string.ascii_lowercase + string.digits,
            string.ascii_uppercase + string.digits, string.ascii_letters, string.ascii_lowercase)


def _font_groups(fonts: Sequence[FontInfo], weights: dict[str, float]
                 ) -> tuple[list[float], list[list[list[FontInfo]]]]:
    """Fonts by source, then by family: (source weights, [source][family] -> fonts)."""
    groups: dict[str, dict[str, list[FontInfo]]] = {}
    for f in fonts:
        groups.setdefault(f.source.split(":")[0], {}).setdefault(f.family, []).append(f)
    names = [s for s in groups if weights.get(s, 1.0) > 0] or list(groups)
    return [weights.get(s, 1.0) for s in names], [list(groups[s].values()) for s in names]


class SynthRenderer:
    """Draws synthetic captchas (:meth:`sample`) and glyphs (:meth:`glyph`), deterministically.

    Args:
        config: what to draw (:class:`SynthConfig`; by default the whole default alphabet).
        seed: with the index, seeds every random choice: renderers with the same seed, config
            and fonts draw identical images.

    Raises OptionError where no font draws some character of the alphabet. A renderer pickles,
    and its fonts travel with it, so DataLoader workers use the same fonts without searching.
    """

    def __init__(self, config: SynthConfig | None = None, seed: int = 0):
        if int(seed) < 0:
            raise OptionError(f"seed {seed}: give a whole number of at least 0")
        self.config = config or SynthConfig()
        self.seed = int(seed)
        #: The usable fonts, each with its source, licence and the characters it draws.
        self.fonts: tuple[FontInfo, ...] = discover_fonts(self.config)
        self._groups = _font_groups(self.fonts, dict(self.config.source_weights))

    def __repr__(self) -> str:
        return f"SynthRenderer(seed={self.seed}, fonts={len(self.fonts)}, alphabet={self.config.alphabet!r})"

    def _rand(self, index: int, stream: int) -> _Rand:
        if int(index) < 0:
            raise OptionError(f"index {index}: give a whole number of at least 0")
        return _Rand((self.seed, int(index), stream))

    def _pick_font(self, r: _Rand, needed: str) -> FontInfo:
        """A font that draws ``needed``: a source by weight, one of its families, one of its fonts."""
        weights, groups = self._groups
        if needed:
            fonts = [f for f in self.fonts if set(needed) <= set(f.chars)]
            if not fonts:
                raise OptionError(f"no usable font draws all of {needed!r}")
            weights, groups = _font_groups(fonts, dict(self.config.source_weights))
        return r.pick(r.pick(groups[r.weighted(weights)]))

    def _pick_text(self, r: _Rand, font: FontInfo) -> str:
        cfg = self.config
        pool = "".join(ch for ch in font.chars if ch not in SYMBOLS)
        symbols = "".join(ch for ch in font.chars if ch in SYMBOLS)
        share = cfg.symbol_share if pool and symbols else 0.0
        pool = pool or symbols  # an alphabet of symbols alone
        if r.chance(0.4):  # now and then keep to one class of characters, as many families do
            chosen = r.pick(_CLASSES)
            subset = "".join(ch for ch in pool if ch in chosen)
            pool = subset if len(subset) >= 4 else pool
        return "".join(r.pick(symbols) if share and r.chance(share) else r.pick(pool)
                       for _ in range(r.i(cfg.min_length, cfg.max_length + 1)))

    def _extras(self, r: _Rand) -> tuple[_Rand, set[str]]:
        """The styles added after the first renderer (:data:`EXTRAS`): which of them this image
        draws, all chosen first from a side stream of the image's draws ``r`` (whose later draws
        shape them), so an image that draws none of them is what it was before they were added."""
        e = r.side()
        return e, {name for name in EXTRAS if e.chance(getattr(self.config, f"p_{name}"))}

    def _one_case(self, e: _Rand, text: str, font: FontInfo) -> str:
        """``text`` all upper or all lower case (where the font and alphabet allow)."""
        cased = text.upper() if e.chance(0.5) else text.lower()
        allowed = set(font.chars) & set(self.config.alphabet)
        return cased if set(cased) <= allowed else text

    def _check_text(self, text: str) -> None:
        outside = sorted(set(text) - set(self.config.alphabet))
        if outside or not text:
            raise OptionError(f"text {text!r}: " + (f"{''.join(outside)!r} not in the alphabet" if outside
                                                    else "give at least one character"))

    def sample(self, index: int, *, text: str | None = None) -> tuple[np.ndarray, str]:
        """The ``index``-th captcha: (uint8 (H, W, 3) RGB image, its label). ``text`` draws that
        text instead of a random one (its characters must be in the alphabet). Afterwards
        ``self.text_box`` holds where the text went, (x0, y0, x1, y1) before the whole-image
        distortions (for checks that the text shows)."""
        r, img, layer, _, (x, y), sc, px = self._compose(index, text)
        _paste(img, layer, x, y)
        self.text_box = _box_on(img, layer, x, y)
        e, extras = self._extra
        if "inverting_line" in extras:
            _inverting_line(e, img, _coverage(img, layer, x, y), self.text_box, sc, px)
        _clutter(r, self.config, img, self.text_box, sc, px)
        if "heavy_line" in extras:
            _heavy_line(e, img, self.text_box, sc, px)
        if "scratches" in extras:
            _scratches(e, img, sc, px)
        img = _distort(r, self.config, img, px, sc.spread < 10)
        if sc.spread >= 10 and "binarise" in extras:
            img = _binarise(img, dark_text=sum(sc.text[0]) < sum(sc.bg))
        return self._resized(index, img), self._text

    def _resized(self, index: int, img: np.ndarray, factor: float | None = None) -> np.ndarray:
        """The image narrowed or widened as a whole (``p_resized`` of them, 0.5-2 times as wide, never
        under 1.5 times as wide as high): a reader that only ever sees text at its natural width
        misreads text squeezed or stretched by a site. ``factor``: one already drawn for this index
        (an animation's frames share it)."""
        factor = self._width_factor(index, *img.shape[:2]) if factor is None else factor
        if factor == 1.0:
            return img
        h, w = img.shape[:2]
        return cv2.resize(img, (round(w * factor), h), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)

    def _width_factor(self, index: int, h: int, w: int) -> float:
        """How much wider :meth:`_resized` draws the ``index``-th image (1.0: as it is), drawn from a
        stream of its own, so the other images stay as they were."""
        if not self.config.p_resized:
            return 1.0
        q = self._rand(index, 6)
        if not q.chance(self.config.p_resized):
            return 1.0
        factor = max(math.exp(q.u(math.log(0.5), math.log(2.0))), 1.5 * h / w)
        return 1.0 if abs(factor - 1) <= 0.05 else factor

    def animation(self, index: int, *, text: str | None = None) -> Animation | None:
        """The ``index``-th captcha drawn as an animation, or None where it is drawn still (all but
        ``config.p_animated`` of them). Two kinds, as sites serve them: each character fades in and
        out on a phase of its own, so no frame shows them all (read with the fusion "ink"); or the
        text stands still under noise drawn anew in every frame (read with "median" or "mean").
        Whole-image distortions are the same in every frame. Whether an index is animated is drawn
        apart from the image's other choices, so the still images are the same at any ``p_animated``."""
        a = self._rand(index, 2)
        if not a.chance(self.config.p_animated):
            return None
        r, base, layer, boxes, (x, y), sc, px = self._compose(index, text)
        count, fade = a.i(3, 9), a.chance(0.5)
        still_clutter = fade and a.chance(0.5)  # fading text keeps its clutter still half the time
        box = _box_on(base, layer, x, y)
        shown = _fade_plan(a, len(boxes), count) if fade else np.ones((count, len(boxes)))
        frames, factor = [], None
        for k in range(count):
            img = base.copy()
            _paste(img, _faded(layer, boxes, shown[k]), x, y)
            _clutter(self._rand(index, 4 if still_clutter else 5 + k), self.config, img, box, sc, px)
            img = _distort(self._rand(index, 3), self.config, img, px, sc.spread < 10)  # one geometry
            factor = self._width_factor(index, *img.shape[:2]) if factor is None else factor
            frames.append(self._resized(index, img, factor))
        return Animation(frames, self._text, "ink" if fade else a.pick(("median", "mean")))

    def _compose(self, index: int, text: str | None):
        """The parts of the ``index``-th captcha before its clutter: (its random draws, the
        background with any shadow, the text layer, each character's box on it, where the layer
        goes, the colour scheme, the text's pixels per em); the text is kept in ``self._text``, and
        the added styles' side stream with the ones this image draws in ``self._extra`` (for sample())."""
        cfg = self.config
        r = self._rand(index, 0)
        if text is not None:
            self._check_text(text)
        font = self._pick_font(r, text or "")
        e, extras = self._extra = self._extras(r)
        if text is None:
            text = self._pick_text(r, font)
            text = self._one_case(e, text, font) if "one_case" in extras else text
        h = int(round(math.exp(r.u(math.log(cfg.height[0]), math.log(cfg.height[1] + 0.5)))))
        lowest = min(max(cfg.aspect[0], 0.33 * len(text)), cfg.aspect[1])
        w = max(8, round(h * r.u(lowest, cfg.aspect[1])))
        small = r.chance(cfg.p_small_text)
        fill_w = r.u(0.28, 0.42) if small else r.u(0.55, 0.94)
        fill_h = r.u(0.5, 0.8)
        if "tall" in extras:
            fill_h, fill_w = e.u(0.75, 1.0), e.u(0.8, 0.98)
        cropped = "cropped" in extras
        sc = _colour_scheme(r, cfg, len(text))
        if "vivid" in extras and sc.spread >= 10:
            sc.text = _vivid_colours(e, sc.bg, len(text))
        st = _text_style(r, cfg, max(fill_h * h / 1.1, MIN_PX))
        if "crowded" in extras:
            st.gap = e.u(-0.33, -0.2)
        if "condensed" in extras:  # narrow glyphs set close, as condensed faces are
            st.stretch, st.gap = e.u(0.45, 0.7), min(st.gap, 0.05)
        glyphs = [_styled_glyph(r, font, ch, st) for ch in text]
        if "perspective" in extras:
            glyphs = [_perspective(e, mask, centre, e.u(0.12, 0.3)) for mask, centre in glyphs]
        if "centred" in extras:  # cropped to its ink and centred, each character loses the baseline
            middle = sum(c for _, c in glyphs) / len(glyphs)
            glyphs = [(mask, middle) for mask, _ in glyphs]
        layer, boxes = _text_layer(r, glyphs, sc.text, st)
        if layer.rgb is None and r.chance(cfg.p_gradient_text):
            _gradient_fill(r, layer)
        if cropped:  # ink 8-30% taller than the canvas, so the edges cut it
            top, bottom = _ink_rows(layer)
            fill_h, fill_w = layer.alpha.shape[0] / (bottom - top + 1) * e.u(1.08, 1.3), e.u(0.8, 0.98)
        fit = _fill_height if "tall" in extras or cropped else _fit_within
        layer, boxes, w, scale = fit(layer, boxes, h, w, (fill_h, fill_w), cfg.aspect[1], st.px)
        lh, lw = layer.alpha.shape
        img = _background(r, cfg, h, w, sc)
        x = round((w - lw) / 2 + r.u(-0.5, 0.5) * (w - lw) * (0.3 if small else 0.9))
        y = round((h - lh) / 2 + r.u(-0.3, 0.3) * (h - lh))
        if cropped:  # the overflow cut at the top, the bottom, or shared between them
            top, bottom = _ink_rows(layer)
            y = round(-top - e.u(0, 1) * max(0, bottom - top + 1 - h))
        if r.chance(cfg.p_shadow):
            _shadow(r, img, layer, x, y, sc)
        if "extrude" in extras:
            _extrude(e, img, layer, x, y, sc)
        self._text = text
        return r, img, layer, boxes, (x, y), sc, st.px * scale

    def glyph(self, index: int, size: tuple[int, int] = GLYPH_SIZE, *, char: str | None = None
              ) -> tuple[np.ndarray, str]:
        """The ``index``-th single-character image: (uint8 (height, width, 3) RGB, its character),
        ``size`` = (width, height). The character is centred (give ``char`` to choose it); parts of
        its neighbours often show at the edges, as in glyphs cut out of captchas."""
        cfg = self.config
        gw, gh = (int(v) for v in size)
        if gw < 8 or gh < 8:
            raise OptionError(f"glyph size {size}: give (width, height), each at least 8 pixels")
        if char is not None and (len(char) != 1 or char not in cfg.alphabet):
            raise OptionError(f"char {char!r}: give one character of the alphabet")
        r = self._rand(index, 1)
        font = self._pick_font(r, char or "")
        ch = char if char is not None else r.pick(font.chars)
        left = r.pick(font.chars) if r.chance(0.5) else ""
        right = r.pick(font.chars) if r.chance(0.5) else ""
        sc = _colour_scheme(r, cfg, len(left) + 1 + len(right))
        img = _background(r, cfg, gh, gw, sc)
        fill_h = r.u(0.45, 0.85)
        st = _text_style(r, cfg, fill_h * gh / 0.8)
        st.gap = max(st.gap, 0.25)  # neighbours show at the edges, never over the character
        layer, boxes = _text_layer(r, [_styled_glyph(r, font, c, st) for c in left + ch + right], sc.text, st)
        x0, y0, x1, y1 = boxes[len(left)]
        scale = min(1.0, 0.92 * gw / (x1 - x0), fill_h * gh / (y1 - y0))
        if scale < 0.98:
            layer = layer.scaled(scale)
            x0, y0, x1, y1 = (v * scale for v in (x0, y0, x1, y1))
        x = round(gw / 2 + r.u(-0.06, 0.06) * gw - (x0 + x1) / 2)
        y = round(gh / 2 + r.u(-0.06, 0.06) * gh - (y0 + y1) / 2)
        _paste(img, layer, x, y)
        _clutter(r, cfg, img, (round(x + x0), round(y + y0), round(x + x1), round(y + y1)), sc,
                 min(st.px * min(scale, 1.0), gw * 0.6))  # clutter sized for the small canvas
        return _distort(r, cfg, img, st.px * min(scale, 1.0), sc.spread < 10), ch
