"""Synthetic captchas and glyphs, drawn on the fly: the pretraining data.

A model is pretrained on these images and then fine-tuned on a user's own captchas, whatever their
family, so the renderer aims for breadth rather than for the look of any one generator: many fonts,
sizes, weights, rotations, spacings from gaps to overlap, colours of text and background (a share
of them told apart only by hue, at nearly equal brightness), noise dots, arcs and strike lines
(some swapping the text's and background's colours where they cross a stroke), warps, blur, low
resolution and JPEG artefacts, on canvases from about 30 to 150 pixels high and 1.5 to 5 times as
wide. Public captcha generators (the ``captcha`` package, wheezy.captcha, ...) are
test families of this project: nothing here imports them, copies them or uses their fonts.

    from crnn_captcha.synthetic import SynthConfig, SynthRenderer, sample_sheet

    renderer = SynthRenderer(seed=0)                  # or SynthRenderer(SynthConfig(alphabet="0123456789"))
    image, label = renderer.sample(17)                # uint8 (H, W, 3) RGB and its text, e.g. 'k7R=q'
    glyph, char = renderer.glyph(17)                  # one centred character, 32 wide x 52 high
    image, label = renderer.sample(17, text="aB3")    # this text (glyph(17, char="Q") likewise)
    renderer.animation(17)                            # its frames, label and fusion, for the share of
                                                      # indices drawn animated (SynthConfig.p_animated)
    renderer.fonts                                    # FontInfo: name, source, licence, characters
    sample_sheet(renderer, 48, "sheet.png")           # a grid of samples with their labels beneath

    python -m crnn_captcha.synth --out sheet.png --n 48 --seed 0 [--glyphs]

Every random choice of ``sample(i)`` comes from a generator seeded by ``(seed, i)``, so an image
depends only on the renderer's seed, its config, the fonts found and ``i``: never on the order of
calls, the number of DataLoader workers or the process (the caches below only save time). The fonts
found depend on the machine, so two machines give the same images only where they have the same
fonts; ``SynthConfig(font_files=(), builtin_fonts=True)`` uses the built-in fonts alone, which every
machine with these dependencies has.

Fonts, and where each comes from (:data:`FONT_SOURCES`; ``python -m crnn_captcha.synth`` lists the
ones found, with each font's licence):

==================  ===========================================================================
source              what and licence
==================  ===========================================================================
system              TrueType/OpenType files in the system's font folders (:data:`SYSTEM_FONT_DIRS`,
                    searched recursively). Each font's licence is looked up by family in
                    :data:`KNOWN_LICENCES` (DejaVu: the Bitstream Vera licence, DejaVu's changes
                    in the public domain), else read from the font's own name table (IDs 13 and
                    14), else reported as not stated. CI machines may have none.
package:NAME        fonts bundled with an installed Python package (:data:`PACKAGE_FONT_DIRS`:
                    matplotlib's DejaVu, STIX (SIL OFL 1.1) and BaKoMa Computer Modern (BaKoMa
                    licence); reportlab's Bitstream Vera), found without importing the package.
                    Never required.
pillow              ``PIL.ImageFont.load_default(size=...)``: a subset of Aileron Regular by Sora
                    Sagano (dotcolon.net) embedded in Pillow's source; public domain (CC0; the
                    font's own copyright string reads "No Rights Reserved."). Pillow itself is
                    under the MIT-CMU licence. Present wherever Pillow has FreeType.
opencv              ``cv2.putText``'s eight Hershey faces (simplex, plain, duplex, complex,
                    triplex, complex small, script simplex, script complex), upright and italic.
                    OpenCV 4 draws the Hershey vector fonts (A. V. Hershey, U.S. Naval Weapons
                    Laboratory, 1967; public domain); OpenCV 5 maps the same faces to its built-in
                    Rubik and Rubik Italic (SIL OFL 1.1) at weights set by face and thickness.
                    Always present.
==================  ===========================================================================

A font is used only for the characters of the alphabet it draws, and draws distinctly: a character
the font lacks (its drawing matches the font's "missing glyph" or is empty) would come out as a box
(tofu) under a label that names something else, and two characters drawn identically in one font
(lowercase drawn as capitals, ``l`` as ``I``) would teach a label the image cannot show; both are
left out for that font. Symbol and icon fonts (a symbol-only character map, or a name like
"Wingdings") are skipped, as are the files named in ``SynthConfig.exclude_fonts``: by default
DroidSansMono, the typeface of the ``captcha`` package, a test family.

How often each effect appears is a field of :class:`SynthConfig` (``SynthConfig.plain()`` turns
them all off). Text never shrinks below :data:`MIN_PX` pixels per em where a wider canvas can hold
it, and lines, dots, blur and low resolution are sized to the text's strokes, so the labels stay
readable; a share of images is still hard on purpose, as captchas are.

Speed: glyph masks are rendered once per process and size (a bounded cache; sizes on a ladder 7%
apart, the layer then scaled to the exact size), images are drawn at their final size, and every
noise and warp is numpy or OpenCV (``python -m crnn_captcha.synth --bench N`` measures the speed on
your machine; docs/results.md has the figures measured). Set ``cv2.setNumThreads(1)`` in
rendering workers: OpenCV's own threads only contend with the other workers.
"""

from .config import DEFAULT_ALPHABET, GLYPH_SIZE, STYLES, SYMBOLS, SynthConfig
from .fonts import FONT_SOURCES, FontInfo, discover_fonts, find_font_files, font_licence
from .renderer import SynthRenderer
from .sheet import images_per_second, sample_sheet, style_sheet

__all__ = ["DEFAULT_ALPHABET", "GLYPH_SIZE", "STYLES", "SYMBOLS", "SynthConfig", "FONT_SOURCES", "FontInfo", "discover_fonts",
           "find_font_files", "font_licence", "SynthRenderer", "images_per_second", "sample_sheet", "style_sheet"]
