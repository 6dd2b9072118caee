"""What the renderer draws, and how often each effect appears: :class:`SynthConfig`."""
from __future__ import annotations

import string
from dataclasses import dataclass, fields

from ..errors import OptionError

SYMBOLS = "+-=?!@#$%&*"


#: All 62 letters and digits (case-sensitive) and common symbols.
DEFAULT_ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase + SYMBOLS


#: (width, height) of a glyph image: the size of the Kaggle "CAPTCHA Characters Dataset (118K)".
GLYPH_SIZE = (32, 52)


# ----- the configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthConfig:
    """What the renderer draws, and how often each effect appears (each ``p_*`` a probability).

    Attributes:
        alphabet: the characters labels are drawn from (case-sensitive; no spaces).
        min_length, max_length: label lengths, inclusive.
        height: (lowest, highest) canvas height in pixels, drawn log-uniformly.
        aspect: (lowest, highest) width/height; long labels start from a wider lowest ratio.
        font_files: use these font files instead of looking for system and package fonts.
        builtin_fonts: also use Pillow's and OpenCV's built-in fonts.
        exclude_fonts: font files whose names contain one of these (case-insensitive) are skipped.
        source_weights: (source, weight) pairs: the share of images drawn with each font source
            present (renormalised over those found); within a source, each family is equally likely.
        backgrounds: (kind, weight) pairs: "solid", "gradient", "texture" (smooth colour noise)
            and "tiles" (a grid of colour blocks).
        max_rotation: the largest per-character rotation, in degrees.
        symbol_share: the chance that a character of a random label is one of :data:`SYMBOLS`
            (where the alphabet and font have any): sites seldom draw them, and a reader that
            expects them often reads line noise as one.
    """

    alphabet: str = DEFAULT_ALPHABET
    min_length: int = 3
    max_length: int = 8
    height: tuple[int, int] = (30, 150)
    aspect: tuple[float, float] = (1.5, 5.0)
    font_files: tuple[str, ...] | None = None
    builtin_fonts: bool = True
    exclude_fonts: tuple[str, ...] = ("DroidSansMono",)
    source_weights: tuple[tuple[str, float], ...] = (("system", 0.5), ("package", 0.1), ("pillow", 0.12),
                                                     ("opencv", 0.28))
    backgrounds: tuple[tuple[str, float], ...] = (("solid", 0.3), ("gradient", 0.3), ("texture", 0.25),
                                                  ("tiles", 0.15))
    max_rotation: float = 30.0
    symbol_share: float = 0.03
    p_rotation: float = 0.6        # characters rotate (each by its own angle)
    p_shear: float = 0.2           # the text leans (a shear, like an oblique style)
    p_stretch: float = 0.3         # characters are narrowed or widened
    p_jitter: float = 0.6          # characters move up and down off the baseline
    p_wave: float = 0.15           # the baseline follows a sine curve
    p_bold: float = 0.25           # strokes thickened
    p_thin: float = 0.1            # strokes thinned (large text only)
    p_outline: float = 0.05        # hollow characters (large text only)
    p_char_warp: float = 0.12      # each character bent by its own sine warp
    p_small_text: float = 0.15     # the text fills only about the middle third of the width
    p_low_contrast: float = 0.15   # text and background of nearly equal brightness, different hue
    p_char_colours: float = 0.25   # each character its own colour
    p_gradient_text: float = 0.1   # text colour changes along the line
    p_shadow: float = 0.06         # a shifted copy of the text beneath it
    p_extrude: float = 0.04        # 3D text: a stack of shifted copies in a darker shade beneath it
    p_one_case: float = 0.3        # the text all upper or all lower case, as many sites draw it
    p_crowded: float = 0.15        # characters overlap their neighbours by a fifth to a third of an em
    p_heavy_line: float = 0.2      # a curve about as thick as the strokes, in the text's colour, through it
    p_scratches: float = 0.12      # many short thin strokes of one colour, mostly of one slant, over it all
    p_inverting_line: float = 0.12  # a thick curve through the text in its colour, background-coloured across strokes
    p_vivid: float = 0.12          # each character a saturated colour of its own, some nearly as light as the background
    p_perspective: float = 0.12    # each character seen at its own slant: its corners pulled apart unevenly
    p_condensed: float = 0.12      # characters squeezed to 45-70% of their width
    p_tall: float = 0.5            # the text fitted to the image: 75-100% of its height, 80-98% of its width
    p_cropped: float = 0.12        # the text runs off the top or bottom edge, as crops of a larger page cut it
    p_centred: float = 0.12        # each character centred on the line's middle, no baseline (g level with 8)
    p_resized: float = 0.25        # the whole image narrowed or widened, 0.5-2 times as wide
    p_grid: float = 0.12           # grid, stripes or random lines behind the text
    p_dots: float = 0.45           # noise dots (pixels and small discs)
    p_arcs: float = 0.3            # arcs and ellipse segments
    p_strike: float = 0.35         # curved lines through the text
    p_affine: float = 0.2          # the whole image slightly rotated, sheared and scaled
    p_warp: float = 0.35           # the whole image warped (sine waves or a random smooth mesh)
    p_lowres: float = 0.08         # drawn small and enlarged (blocky, soft)
    p_blur: float = 0.25           # Gaussian or motion blur
    p_noise: float = 0.3           # Gaussian pixel noise
    p_jpeg: float = 0.25           # JPEG re-encoding at low quality
    p_binarise: float = 0.05       # thresholded to black and white at the end, as some sites serve
    p_animated: float = 0.05       # :meth:`SynthRenderer.animation` draws frames (fading text or moving noise)

    def __post_init__(self) -> None:
        alphabet = self.alphabet
        if not alphabet or len(set(alphabet)) != len(alphabet):
            raise OptionError(f"alphabet {alphabet!r}: give each character once, at least one")
        if any(not ch.isprintable() or ch.isspace() for ch in alphabet):
            raise OptionError(f"alphabet {alphabet!r}: spaces and control characters cannot be labels")
        if not 1 <= self.min_length <= self.max_length:
            raise OptionError(f"lengths {self.min_length}-{self.max_length}: need 1 <= min_length <= max_length")
        if not 8 <= self.height[0] <= self.height[1] <= 1024:
            raise OptionError(f"height {self.height}: need 8 <= lowest <= highest <= 1024 pixels")
        if not 0.5 <= self.aspect[0] <= self.aspect[1] <= 20:
            raise OptionError(f"aspect {self.aspect}: need 0.5 <= lowest <= highest <= 20")
        for f in fields(self):
            value = getattr(self, f.name)
            if (f.name.startswith("p_") or f.name == "symbol_share") and not 0.0 <= value <= 1.0:
                raise OptionError(f"{f.name}={value}: a probability must lie in [0, 1]")
        for name in ("source_weights", "backgrounds"):
            pairs = getattr(self, name)
            if any(w < 0 for _, w in pairs) or sum(w for _, w in pairs) <= 0:
                raise OptionError(f"{name} {pairs}: weights must be non-negative, at least one positive")
        known = {"solid", "gradient", "texture", "tiles"}
        if {k for k, _ in self.backgrounds} - known:
            raise OptionError(f"backgrounds {self.backgrounds}: kinds are {', '.join(sorted(known))}")

    @classmethod
    def style(cls, name: str, **overrides) -> "SynthConfig":
        """:meth:`plain` with one style of :data:`STYLES` always on: for sheets and checks of each
        (``overrides``: other fields, such as the alphabet)."""
        if name not in STYLES:
            raise OptionError(f"style {name!r} is unknown; styles are {', '.join(STYLES)}")
        return cls.plain(**{**STYLES[name], **overrides})

    @classmethod
    def plain(cls, **overrides) -> "SynthConfig":
        """Dark text on a plain light background, every effect off: for checks and debugging."""
        offs = {f.name: 0.0 for f in fields(cls) if f.name.startswith("p_")}
        offs["backgrounds"] = (("solid", 1.0),)
        offs.update(overrides)
        return cls(**offs)


#: Each style the renderer draws, as the settings that turn it on alone over :meth:`SynthConfig.plain`.
STYLES: dict[str, dict] = {
    "plain": {},
    "rotated": {"p_rotation": 1.0}, "sheared": {"p_shear": 1.0}, "stretched": {"p_stretch": 1.0},
    "jittered": {"p_jitter": 1.0}, "wave": {"p_wave": 1.0}, "bold": {"p_bold": 1.0},
    "thin": {"p_thin": 1.0, "height": (60, 150)}, "hollow": {"p_outline": 1.0, "height": (60, 150)},
    "bent": {"p_char_warp": 1.0}, "small_text": {"p_small_text": 1.0},
    "low_contrast": {"p_low_contrast": 1.0}, "char_colours": {"p_char_colours": 1.0},
    "gradient_text": {"p_gradient_text": 1.0}, "shadow": {"p_shadow": 1.0}, "3d": {"p_extrude": 1.0},
    "one_case": {"p_one_case": 1.0}, "crowded": {"p_crowded": 1.0}, "heavy_line": {"p_heavy_line": 1.0},
    "scratches": {"p_scratches": 1.0}, "inverting_line": {"p_inverting_line": 1.0},
    "condensed": {"p_condensed": 1.0}, "tall": {"p_tall": 1.0},
    "cropped": {"p_cropped": 1.0}, "centred": {"p_centred": 1.0}, "resized": {"p_resized": 1.0}, "vivid": {"p_vivid": 1.0},
    "perspective": {"p_perspective": 1.0},
    "gradient_background": {"backgrounds": (("gradient", 1.0),)},
    "texture_background": {"backgrounds": (("texture", 1.0),)},
    "tiles_background": {"backgrounds": (("tiles", 1.0),)},
    "grid": {"p_grid": 1.0}, "dots": {"p_dots": 1.0}, "arcs": {"p_arcs": 1.0}, "strike": {"p_strike": 1.0},
    "affine": {"p_affine": 1.0}, "warp": {"p_warp": 1.0}, "lowres": {"p_lowres": 1.0, "height": (40, 150)},
    "blur": {"p_blur": 1.0}, "noise": {"p_noise": 1.0}, "jpeg": {"p_jpeg": 1.0},
    "binarised": {"p_binarise": 1.0},
}
