import io

import numpy as np
import pytest
import torch
from PIL import Image

from crnn_captcha.errors import ImageError
from crnn_captcha.read.images import PreprocessConfig, load_gray, preprocess, resize_image
from synth import render

CFG = PreprocessConfig()


@pytest.fixture(scope="module")
def base():
    return render("2b4mx")  # mode L, 200x50


def png_bytes(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_all_input_types_agree(base, tmp_path):
    ref = preprocess(base, CFG)
    assert ref.shape == (1, CFG.height, CFG.width) and ref.dtype == torch.float32
    arr = np.asarray(base)
    path = tmp_path / "x.png"
    base.save(path)
    inputs = {
        "path": path,
        "str": str(path),
        "bytes": png_bytes(base),
        "array HxW": arr,
        "array HxWx3": np.repeat(arr[:, :, None], 3, axis=2),
        "array HxWx4": np.concatenate([np.repeat(arr[:, :, None], 3, 2), np.full(arr.shape + (1,), 255, np.uint8)], 2),
        "array float": arr.astype(np.float32) / 255.0,
        "tensor HxW": torch.from_numpy(arr.copy()),
        "tensor CxHxW float": torch.from_numpy(arr.copy()).float().div(255).unsqueeze(0).repeat(3, 1, 1),
    }
    for name, src in inputs.items():
        out = preprocess(src, CFG)
        assert torch.allclose(out, ref, atol=2 / 255 / CFG.std), name


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "JPEG"])
def test_modes(base, mode, tmp_path):
    ref = np.asarray(base, dtype=np.float64)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(base).astype(np.uint16) * 257))
        assert img.mode.startswith("I;16")
        data = png_bytes(img)
    elif mode == "JPEG":
        data = png_bytes(base.convert("RGB"), "JPEG", quality=95)
    else:
        data = png_bytes(base.convert(mode))
    gray = load_gray(data).astype(np.float64)
    assert gray.shape == ref.shape
    assert np.abs(gray - ref).mean() < 3.0, mode


def test_rgba_transparency_lies_on_white():
    rgba = np.zeros((50, 200, 4), np.uint8)  # fully transparent black
    assert load_gray(rgba).min() == 255


def test_rgba_file_partly_transparent():
    rgba = np.zeros((50, 200, 4), np.uint8)  # black everywhere, opaque only on the left half
    rgba[:, :100, 3] = 255
    gray = load_gray(png_bytes(Image.fromarray(rgba, "RGBA")))
    assert gray[:, :100].max() == 0 and gray[:, 100:].min() == 255
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert load_gray(png_bytes(Image.fromarray(opaque, "RGBA"))).max() == 0


def test_pad_resize_same_aspect_is_a_plain_resize_and_other_shapes_are_padded():
    pad, stretch = PreprocessConfig(resize="pad"), PreprocessConfig(resize="stretch")
    same = (np.arange(50 * 200).reshape(50, 200) % 251).astype(np.uint8)  # 200x50: the model's 4:1
    assert np.array_equal(resize_image(same, pad), resize_image(same, stretch))
    tall = np.full((64, 128), 200, np.uint8)  # 2:1 -> scaled to 64x32, centred, border colour around
    tall[16:48, 40:88] = 0
    out = resize_image(tall, pad)
    assert out.shape == (32, 128) and (out[:, :32] == 200).all() and (out[:, -32:] == 200).all()
    assert out[:, 32:96].min() == 0


def test_pad_with_x_scale_stretches_the_text_across_and_checks_the_stretched_shape():
    wide = PreprocessConfig(height=32, width=192, resize="pad", x_scale=1.5)  # fits 128x32 images, drawn 1.5x across
    img = np.full((50, 200), 255, np.uint8)
    img[10:40, 90:110] = 0  # a 20 px stroke in the middle
    out = resize_image(img, wide)
    assert out.shape == (32, 192)
    assert np.array_equal(out, resize_image(img, PreprocessConfig(height=32, width=192, resize="stretch")))
    ink = lambda x: int((x < 128).any(axis=0).sum())  # noqa: E731
    assert ink(out) in range(18, 22)  # the 20 px stroke: 20 * 1.5 * 0.64 = 19 px wide
    assert ink(resize_image(img, PreprocessConfig(height=32, width=192, resize="pad"))) in range(12, 15)  # 20 * 0.64
    square = np.full((50, 50), 255, np.uint8)  # 1:1 against the 128:32 the input fits: refused
    with pytest.raises(ImageError, match="shaped like 128x32"):
        resize_image(square, PreprocessConfig(height=32, width=192, resize="pad", x_scale=1.5, max_aspect_error=3.0))
    with pytest.raises(ValueError, match="x_scale applies to resize 'pad' only"):
        PreprocessConfig(resize="stretch", x_scale=1.5)


@pytest.mark.parametrize(
    "name,data,match",
    [
        ("empty.png", b"", "empty"),
        ("text.png", b"this is not an image at all", "not an image"),
    ],
)
def test_bad_files(tmp_path, name, data, match):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(ImageError, match=match) as e:
        preprocess(p, CFG)
    assert str(p) in str(e.value)
    assert "\n" not in str(e.value)


def test_truncated_file(base, tmp_path):
    p = tmp_path / "cut.png"
    p.write_bytes(png_bytes(base)[:300])
    with pytest.raises(ImageError, match="corrupt or truncated") as e:
        preprocess(p, CFG)
    assert str(p) in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        preprocess(tmp_path / "nope.png", CFG)
    with pytest.raises(ImageError, match="directory"):
        preprocess(tmp_path, CFG)


def test_decompression_bomb_refused(tmp_path):
    big = Image.new("1", (20000, 20000))  # 400M pixels, a tiny file
    p = tmp_path / "bomb.png"
    big.save(p)
    with pytest.raises(ImageError, match="pixels") as e:
        preprocess(p, CFG)
    assert "bomb.png" in str(e.value)


@pytest.mark.parametrize(
    "arr",
    [np.zeros((5,), np.uint8), np.zeros((50, 200, 2), np.uint8), np.zeros((0, 200), np.uint8),
     np.zeros((2, 50, 200, 3), np.uint8)],
)
def test_wrong_array_shapes(arr):
    with pytest.raises(ImageError, match="shape"):
        preprocess(arr, CFG)


def test_wrong_aspect_ratio_names_size(tmp_path):
    glyph = Image.new("L", (32, 52), 255)
    p = tmp_path / "glyph.png"
    glyph.save(p)
    with pytest.raises(ImageError, match="32x52") as e:
        preprocess(p, CFG)
    assert "glyph.png" in str(e.value)


def test_nan_array_refused():
    a = np.full((50, 200), np.nan, np.float32)
    with pytest.raises(ImageError, match="NaN"):
        preprocess(a, CFG)


def test_signalling_nan_pixels_in_a_float_tiff_are_refused_without_a_numpy_warning():
    import io
    import warnings

    from PIL import Image

    from crnn_captcha.errors import ImageError
    from crnn_captcha.read.images import load_image

    pixels = np.full((20, 60), 0.5, np.float32)
    pixels[3, 4] = np.array([0x7FA00000], np.uint32).view(np.float32)[0]  # a signalling NaN: its cast warns
    buf = io.BytesIO()
    Image.fromarray(pixels, "F").save(buf, "TIFF")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="NaN or infinite"):
            load_image(buf.getvalue())
    assert not [w for w in seen if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in seen]
