"""The synthetic renderer: deterministic, draws every character it may label, labels within bounds,
glyphs of the right size, a sample sheet, and the same on a machine without any font files."""
import pickle

import numpy as np
import pytest
from PIL import Image

from crnn_captcha import synth, synthetic
import crnn_captcha.synthetic.fonts  # noqa: F401  (patched below)
from crnn_captcha.errors import OptionError
from crnn_captcha.synthetic import DEFAULT_ALPHABET, SynthConfig, SynthRenderer, sample_sheet
from crnn_captcha.synthetic.config import STYLES
from crnn_captcha.synthetic.sheet import style_sheet


@pytest.fixture(scope="module")
def renderer():
    return SynthRenderer(seed=0)


def ink(img: np.ndarray) -> int:
    """Pixels that differ clearly from the top-left corner (the background of a plain image)."""
    return int((np.abs(img.astype(np.int16) - img[0, 0].astype(np.int16)).sum(axis=2) > 60).sum())


def test_same_seed_and_index_give_the_same_image_in_any_order(renderer):
    first = [renderer.sample(i) for i in (5, 3, 11)]
    again = SynthRenderer(seed=0)
    second = {i: again.sample(i) for i in (11, 3, 5)}  # another renderer, another order
    for i, (img, label) in zip((5, 3, 11), first):
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert label == second[i][1] and img.tobytes() == second[i][0].tobytes()
    glyph, char = renderer.glyph(7)
    assert renderer.glyph(7)[0].tobytes() == glyph.tobytes() and renderer.glyph(7)[1] == char


def test_different_seeds_and_indices_differ(renderer):
    other = SynthRenderer(seed=1)
    assert any(renderer.sample(i)[0].tobytes() != other.sample(i)[0].tobytes() for i in range(3))
    assert len({renderer.sample(i)[1] for i in range(10)}) > 1


def test_a_pickled_renderer_draws_the_same_images(renderer):
    copy = pickle.loads(pickle.dumps(renderer))  # as DataLoader workers receive it
    assert copy.fonts == renderer.fonts
    assert copy.sample(2)[0].tobytes() == renderer.sample(2)[0].tobytes()


def test_labels_keep_to_the_alphabet_and_lengths_and_cover_it(renderer):
    seen = set()
    for i in range(300):
        img, label = renderer.sample(i)
        assert 3 <= len(label) <= 8 and set(label) <= set(DEFAULT_ALPHABET), label
        assert 30 <= img.shape[0] <= 150 and img.shape[1] >= 1.5 * img.shape[0] - 1, img.shape
        seen |= set(label)
    assert seen == set(DEFAULT_ALPHABET), sorted(set(DEFAULT_ALPHABET) - seen)
    digits = SynthRenderer(SynthConfig(alphabet="0123456789", min_length=2, max_length=4), seed=3)
    for i in range(30):
        label = digits.sample(i)[1]
        assert 2 <= len(label) <= 4 and label.isdigit(), label


def test_symbols_are_rare_and_many_labels_keep_to_one_class(renderer):
    labels = [renderer.sample(i)[1] for i in range(600)]
    chars = "".join(labels)
    share = sum(ch in synthetic.SYMBOLS for ch in chars) / len(chars)
    assert 0.01 < share < 0.06, share  # symbol_share is 0.03: sites seldom draw symbols
    digits_only = sum(label.isdigit() for label in labels) / len(labels)
    assert 0.06 < digits_only < 0.2, digits_only  # 0.4 of labels keep to a class, digits alone 2 in 6 of them
    lower = sum(label.islower() and label.isalpha() for label in labels) / len(labels)
    assert lower > 0.03, lower
    none = SynthRenderer(SynthConfig(symbol_share=0.0), seed=0)
    assert not any(ch in synthetic.SYMBOLS for i in range(100) for ch in none.sample(i)[1])
    only = SynthRenderer(SynthConfig(alphabet=synthetic.SYMBOLS, symbol_share=0.0), seed=0)
    assert all(set(only.sample(i)[1]) <= set(synthetic.SYMBOLS) for i in range(5))  # symbols alone still drawn


def test_every_character_draws_visible_ink():
    plain = SynthRenderer(SynthConfig.plain())  # plain background, no effects: ink is the character
    for k, ch in enumerate(DEFAULT_ALPHABET):
        img, char = plain.glyph(k, char=ch)
        assert char == ch and ink(img) >= 10, (ch, ink(img))
    img, label = plain.sample(0, text="aB3%")
    assert label == "aB3%" and ink(img) >= 40
    for font in plain.fonts:  # where each font comes from and its licence are known
        assert font.chars and font.licence and font.source.split(":")[0] in {*synthetic.FONT_SOURCES, "given"}


def test_glyphs_have_the_asked_size_and_their_character(renderer):
    img, char = renderer.glyph(0)
    assert img.shape == (52, 32, 3) and img.dtype == np.uint8 and char in DEFAULT_ALPHABET
    img, char = renderer.glyph(1, size=(40, 64), char="Q")
    assert img.shape == (64, 40, 3) and char == "Q"


def test_the_sample_sheet_is_a_png(renderer, tmp_path):
    out = sample_sheet(renderer, 6, tmp_path / "sheet.png", columns=3)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 300 and img.height > 100
    with Image.open(sample_sheet(renderer, 4, tmp_path / "glyphs.png", glyphs=True)) as img:
        assert img.format == "PNG"


def test_without_font_files_the_builtin_fonts_draw_everything(monkeypatch):
    monkeypatch.setattr(synthetic.fonts, "find_font_files", lambda: [])
    bare = SynthRenderer(seed=0)
    sources = {f.source for f in bare.fonts}
    assert sources <= {"pillow", "opencv"} and "opencv" in sources
    assert {ch for f in bare.fonts for ch in f.chars} == set(DEFAULT_ALPHABET)
    labels = "".join(bare.sample(i)[1] for i in range(40))
    assert set(labels) <= set(DEFAULT_ALPHABET) and len(set(labels)) > 30
    assert bare.glyph(0)[0].shape == (52, 32, 3)


def test_a_character_no_font_draws_is_refused():
    adlam = "\U0001e900"  # a script none of the built-in fonts covers
    with pytest.raises(OptionError, match="no usable font draws"):
        SynthRenderer(SynthConfig(alphabet="abc" + adlam, font_files=()))


@pytest.mark.parametrize("bad", [dict(alphabet="aab"), dict(alphabet="a b"), dict(min_length=5, max_length=3),
                                 dict(p_blur=1.5), dict(height=(40, 20)), dict(backgrounds=(("plaid", 1.0),)),
                                 dict(symbol_share=-0.1)])
def test_bad_configs_say_what_is_wrong(bad):
    with pytest.raises(OptionError):
        SynthConfig(**bad)


def test_text_outside_the_alphabet_is_refused(renderer):
    with pytest.raises(OptionError, match="not in the alphabet"):
        renderer.sample(0, text="ab~")
    with pytest.raises(OptionError):
        renderer.glyph(0, char="ab")


def test_the_command_writes_a_sheet_and_lists_fonts(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert synth.main(["--out", str(out), "--n", "3", "--bench", "5", "--alphabet", "0123456789"]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and "[opencv]" in printed and "images per CPU-second" in printed
    assert synth.main(["--out", str(out), "--min-length", "4", "--max-length", "2"]) == 2


def test_animations_are_seeded_and_their_fusion_shows_the_text():
    from crnn_captcha.read.frames import FRAME_FUSIONS, fuse_frames

    never = SynthRenderer(SynthConfig(p_animated=0.0), seed=2)
    always = SynthRenderer(SynthConfig(p_animated=1.0), seed=2)
    assert all(never.animation(i) is None for i in range(20))
    kinds = set()
    for i in range(12):
        a, b = always.animation(i), always.animation(i)
        assert a.text == b.text and all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
        assert 3 <= len(a.frames) <= 8 and len({f.shape for f in a.frames}) == 1 and a.fusion in FRAME_FUSIONS
        assert any(not np.array_equal(a.frames[0], f) for f in a.frames[1:])  # something moves or fades
        # the text is the one the still image of this index shows, drawn alike under every frame
        assert a.text == always.sample(i)[1] and a.frames[0].shape == always.sample(i)[0].shape
        kinds.add(a.fusion)
        assert fuse_frames(a.frames, a.fusion).shape == a.frames[0].shape
    assert "ink" in kinds and kinds & {"median", "mean"}
    # an index's still image does not depend on how often animations are drawn
    assert all(np.array_equal(never.sample(i)[0], always.sample(i)[0]) for i in range(5))


def test_pretraining_reads_an_animation_as_the_reader_would():
    pytest.importorskip("torch")
    from crnn_captcha.read.charset import Charset
    from crnn_captcha.read.frames import fuse_frames
    from crnn_captcha.read.images import PreprocessConfig, resize_image
    from crnn_captcha.training.synthetic_data import SynthCaptchas

    renderer = SynthRenderer(SynthConfig(p_animated=1.0, alphabet="0123456789"), seed=1)
    cfg = PreprocessConfig(height=32, width=128, channels=3, resize="pad", max_aspect_error=0.0)
    data = SynthCaptchas(renderer, Charset("0123456789"), cfg)
    a = renderer.animation(3)
    pixels, label = data._pixels(3)
    assert label == a.text and np.array_equal(pixels, resize_image(fuse_frames(a.frames, a.fusion), cfg))


@pytest.mark.parametrize("name", list(STYLES))
def test_every_style_draws_visible_text_the_same_way_for_a_seed(name):
    """Each style alone: the text box holds ink that stands out from its own typical colour (in
    brightness or hue), the image stays RGB of the drawn size, and a seed always gives the same image."""
    config = SynthConfig.style(name)
    first = SynthRenderer(config, seed=5)
    again = SynthRenderer(config, seed=5)
    for i in range(6):
        img, label = first.sample(i)
        x0, y0, x1, y1 = first.text_box
        h, w = img.shape[:2]
        assert img.dtype == np.uint8 and img.shape[2] == 3 and config.height[0] <= h <= config.height[1] + 1
        box = img[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)].astype(np.int16)
        typical = np.median(box.reshape(-1, 3), axis=0)
        standing_out = (np.abs(box - typical).max(axis=2) > 25).mean()
        assert standing_out > 0.03, f"{name} image {i} ({label!r}): text box nearly blank"
        img2, label2 = again.sample(i)
        assert label2 == label and np.array_equal(img2, img)


def test_the_style_sheet_has_a_row_for_every_style(tmp_path):
    out = style_sheet(tmp_path / "styles.png", per_style=2, styles=["plain", "3d", "binarised"])
    with Image.open(out) as img:
        assert img.size == (150 + 2 * 225, 3 * 85)
        pixels = np.asarray(img.convert("L"))
    for row in range(3):  # every tile holds ink: dark pixels right of the names
        assert (pixels[row * 85:(row + 1) * 85, 150:] < 128).sum() > 50
    with pytest.raises(OptionError, match="style 'blotchy' is unknown"):
        SynthConfig.style("blotchy")
    assert synth.main(["--out", str(tmp_path / "all.png"), "--styles"]) == 0


def test_new_styles_come_out_as_drawn():
    one_case = SynthRenderer(SynthConfig.style("one_case"), seed=1)
    labels = [one_case.sample(i)[1] for i in range(40)]
    assert all(t == t.upper() or t == t.lower() for t in labels)
    binarised, _ = SynthRenderer(SynthConfig.style("binarised"), seed=1).sample(0)
    assert set(np.unique(binarised)) <= {0, 255}
    flat, _ = SynthRenderer(SynthConfig.plain(), seed=1).sample(0)
    deep, _ = SynthRenderer(SynthConfig.style("3d"), seed=1).sample(0)
    assert ink(deep) > ink(flat)  # the stack beneath the text adds ink around it
    scratched = SynthRenderer(SynthConfig.style("scratches"), seed=1)
    img, _ = scratched.sample(0)
    x0, y0, x1, y1 = scratched.text_box  # the same box as the plain image's: only the strokes differ

    def outside(im):
        im = im.copy()
        im[max(0, y0):y1, max(0, x0):x1] = im[0, 0]
        return im

    assert ink(outside(flat)) == 0
    assert ink(outside(img)) > 0.005 * img.shape[0] * img.shape[1], "scratches cover the whole image"


def test_cropped_text_runs_off_the_top_or_bottom_edge():
    def edge_ink(img):  # text pixels in the first and last rows, against the corner's background
        rows = img[[0, -1]].astype(int)
        return int((np.abs(rows - img[0, 0].astype(int)).max(axis=2) > 60).sum())

    cropped, plain = SynthRenderer(SynthConfig.style("cropped"), seed=2), SynthRenderer(SynthConfig.plain(), seed=2)
    for i in range(6):
        img, _ = cropped.sample(i)
        assert edge_ink(img) > 0, f"image {i}: the text should cross the top or bottom edge"
        assert edge_ink(plain.sample(i)[0]) == 0, f"image {i}: plain text keeps within the image"


def test_resized_images_keep_their_height_and_leave_the_others_as_they_were():
    resized, plain = SynthRenderer(SynthConfig.style("resized"), seed=6), SynthRenderer(SynthConfig.plain(), seed=6)
    changed = 0
    for i in range(8):
        img, text = resized.sample(i)
        before, same_text = plain.sample(i)
        assert text == same_text and img.shape[0] == before.shape[0]
        ratio = img.shape[1] / before.shape[1]
        assert 0.49 <= ratio <= 2.01 and img.shape[1] >= 1.5 * img.shape[0] - 1
        changed += ratio != 1.0
        assert np.array_equal(img, resized.sample(i)[0])  # the same factor each time
    assert changed >= 6
    with_it, without = SynthRenderer(SynthConfig(), seed=9), SynthRenderer(SynthConfig(p_resized=0.0), seed=9)
    same = sum(np.array_equal(with_it.sample(i)[0], without.sample(i)[0]) for i in range(24))
    assert 12 <= same < 24  # a quarter or so resized, the rest drawn as without it


def test_the_glyph_cache_keeps_to_its_budget_and_keeps_what_was_used_last(monkeypatch):
    fonts = crnn_captcha.synthetic.fonts
    monkeypatch.setattr(fonts, "_GLYPH_CACHE", {})
    monkeypatch.setattr(fonts, "_GLYPH_CACHE_USED", [0])
    monkeypatch.setattr(fonts, "_GLYPH_CACHE_BYTES", 8_000)
    font = SynthRenderer(SynthConfig.plain(), seed=0).fonts[0]
    first = fonts._glyph_mask(font, 40, "A")
    for ch in "BCDEFGHIJKLMNOPQRSTUVWXYZ":
        fonts._glyph_mask(font, 40, ch)
        assert fonts._glyph_mask(font, 40, "A") is first  # used again each time: never the one dropped
        assert fonts._GLYPH_CACHE_USED[0] == sum(m.nbytes for m, _ in fonts._GLYPH_CACHE.values()) <= 8_000
    assert len(fonts._GLYPH_CACHE) < 26  # some were dropped to keep to the budget
    assert all(m.base is None for m, _ in fonts._GLYPH_CACHE.values())  # no crop keeps a larger canvas alive


def test_vivid_colours_stand_apart_from_the_background_by_hue_even_when_light():
    from crnn_captcha.synthetic.drawing import _distance, _luma, _Rand, _vivid_colours

    white = (255.0, 255.0, 255.0)
    colours = [c for i in range(30) for c in _vivid_colours(_Rand((1, i, 0)), white, 6)]
    assert all(_distance(c, white) >= 130 for c in colours)
    assert any(_luma(c) > 170 for c in colours), "no light colours: vivid text never nears a white page"
    assert all(max(c) - min(c) > 60 for c in colours)  # saturated, never gray


def test_perspective_moves_a_glyphs_corners_and_keeps_its_ink():
    from crnn_captcha.synthetic.drawing import _Rand
    from crnn_captcha.synthetic.text import _perspective

    mask = np.zeros((40, 30), np.uint8)
    mask[5:35, 5:25] = 255  # a filled box: its warped outline is no longer a rectangle
    out, centre = _perspective(_Rand((3, 0, 0)), mask, 0.0, 0.3)
    assert out.any(axis=1).all() and out.any(axis=0).all()  # cropped to its ink
    assert 0.5 < (out > 127).sum() / (mask > 127).sum() < 2.0
    filled = (out > 127).mean()
    assert filled < 0.97, "the box came out rectangular: no corner moved"
    again, _ = _perspective(_Rand((3, 0, 0)), mask, 0.0, 0.3)
    assert np.array_equal(out, again)


def _ink_height_share(img: np.ndarray) -> float:
    """The share of an image's rows that hold text: plain styles draw it dark on one light colour."""
    bg = np.median(img.reshape(-1, 3), axis=0)
    rows = np.where((np.abs(img.astype(int) - bg).sum(axis=2) > 120).any(axis=1))[0]
    return (rows.max() - rows.min() + 1) / img.shape[0] if len(rows) else 0.0


def test_tall_text_fills_the_height_where_plain_text_leaves_room():
    tall = SynthRenderer(SynthConfig.style("tall"), seed=4)
    plain = SynthRenderer(SynthConfig.plain(), seed=4)
    tall_shares = [_ink_height_share(tall.sample(i)[0]) for i in range(30)]
    plain_shares = [_ink_height_share(plain.sample(i)[0]) for i in range(30)]
    assert np.median(tall_shares) >= 0.7, tall_shares
    assert np.median(plain_shares) < 0.65, plain_shares
    from crnn_captcha.synthetic.renderer import _fill_height
    from crnn_captcha.synthetic.text import _Layer

    long_text = _Layer(np.ones((40, 400), np.float32), (0, 0, 0))  # far wider than a 50 x 100 canvas allows
    layer, boxes, w, sy = _fill_height(long_text, [(0, 0, 400, 40)], 50, 100, (0.9, 0.9), 5.0)
    lh, lw = layer.alpha.shape
    assert 100 < w <= 250 and lw <= 0.9 * w + 1 and lh <= 0.9 * 50 + 1  # the canvas widened, the text fits it
    assert boxes == [(0, 0, lw, lh)] and abs(sy - lh / 40) < 0.03
    short_text = _Layer(np.ones((40, 60), np.float32), (0, 0, 0))
    layer, _, w, _ = _fill_height(short_text, [(0, 0, 60, 40)], 50, 200, (0.9, 0.9), 5.0)
    assert w == 200 and layer.alpha.shape[0] == 45  # room across: fitted to the height alone


def test_an_inverting_line_cuts_the_strokes_it_crosses():
    """The same text as the plain image of the index; where the line crosses a stroke the stroke
    turns background-coloured, and over the background (most images) the line shows as ink."""
    inverted = SynthRenderer(SynthConfig.style("inverting_line"), seed=1)
    plain = SynthRenderer(SynthConfig.plain(), seed=1)
    drawn_over_background = 0
    for i in range(8):
        img, text = inverted.sample(i)
        before, same_text = plain.sample(i)
        assert text == same_text and img.shape == before.shape
        corner = before[0, 0].astype(int)
        ink_before = np.abs(before.astype(int) - corner).max(axis=2) > 60
        ink_after = np.abs(img.astype(int) - corner).max(axis=2) > 60
        assert (ink_before & ~ink_after).sum() > 5, f"image {i} ({text!r}): no stroke was cut"
        drawn_over_background += (ink_after & ~ink_before).sum() > 10
    assert drawn_over_background >= 3


def test_centred_characters_lose_the_baseline():
    """Centred, g and q sit level with 8 and 9 (their boxes share a middle); on a baseline their
    descenders hang below the digits."""
    def middles(renderer, i):
        boxes = renderer._compose(i, "g8q9")[3]
        return [(y0 + y1) / 2 for _, y0, _, y1 in boxes]

    centred = SynthRenderer(SynthConfig.style("centred"), seed=3)
    plain = SynthRenderer(SynthConfig.plain(), seed=3)
    for i in range(6):
        level, hanging = middles(centred, i), middles(plain, i)
        assert max(level) - min(level) <= 1.0, level
        assert hanging[0] - hanging[1] > 2 and hanging[2] - hanging[3] > 2, hanging  # g below 8, q below 9
    img, text = centred.sample(0, text="g8q9")
    assert text == "g8q9" and img.std() > 10
