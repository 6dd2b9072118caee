"""The input size and colour that training chooses from the images, and an RGB model read back."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from crnn_captcha import CaptchaReader
from crnn_captcha.read.charset import Charset
from crnn_captcha.read.checkpoint import atomic_save, make_checkpoint
from crnn_captcha.read.ctc import greedy_texts
from crnn_captcha.training.export import export_onnx
from crnn_captcha.training.input_choice import choose_input
from crnn_captcha.read.images import PreprocessConfig, preprocess
from crnn_captcha.read.model import CRNN, CRNNConfig


def captcha(w: int, h: int, text_rgb=(20, 20, 20), back_rgb=(240, 240, 240), seed: int = 0) -> np.ndarray:
    """Blocky 'characters' of one colour on a background of another."""
    img = Image.new("RGB", (w, h), back_rgb)
    draw = ImageDraw.Draw(img)
    rng = np.random.default_rng(seed)
    for x in range(w // 10, w - w // 10, max(4, w // 8)):
        top = int(rng.integers(h // 5, h // 3))
        draw.rectangle([x, top, x + max(2, w // 20), h - top], fill=text_rgb)
    return np.asarray(img)


def test_wide_gray_captchas_keep_their_ratio_at_32_px():
    choice = choose_input([captcha(300, 50, seed=i) for i in range(5)], longest_label=6)
    assert (choice.height, choice.width, choice.channels) == (32, 192, 1)  # 300/50 = 6 -> 32 x 192
    assert "height 32" in choice.why and "gray" in choice.why


def test_tall_captchas_read_at_64_px_and_widen_for_the_longest_label():
    choice = choose_input([captcha(100, 150, seed=i) for i in range(5)], longest_label=8)
    # 64 * 100/150 = 43 px is narrow for 8 characters; the blocks fill 47% of the height (30 px at 64),
    # so each character gets 5/6 * 30 = 25 px: 200, up to a multiple of 16 -> 208, the text stretched to fill it
    assert (choice.height, choice.width, choice.x_scale) == (64, 208, round(208 / (64 * 100 / 150), 3))
    assert "width 208, not the 44 of the ratio 0.67" in choice.why and "8-character label" in choice.why
    assert "47% of the image's" in choice.why and "stretched 4.88x" in choice.why
    short = choose_input([captcha(300, 50, seed=i) for i in range(5)], longest_label=8)
    assert (short.width, short.x_scale) == (192, 1.0) and "keeps the ratio" in short.why


def test_the_width_follows_the_texts_height_not_the_images():
    near = [captcha(150, 60, seed=i) for i in range(5)]  # blocks over half the height and more
    widened = choose_input(near, longest_label=8)
    assert widened.width > 160 and widened.x_scale > 1  # past the 160 of the ratio 2.5
    framed = [np.pad(a, ((60, 60), (150, 150), (0, 0)), constant_values=240) for a in near]  # 3x larger, same ratio
    kept = choose_input(framed, longest_label=8)  # the same text, a sixth of the height: wide enough as it is
    assert (kept.width, kept.x_scale) == (160, 1.0) and "keeps the ratio" in kept.why
    long_label = choose_input(framed, longest_label=30)  # small text, long labels: 2.5 frames each at least
    assert long_label.width == 300 and long_label.x_scale > 1


def test_colours_of_equal_brightness_choose_colour_input():
    red, teal = (200, 80, 80), (60, 150, 117)  # Rec.601 luma 116 and 119: gray would lose the text
    choice = choose_input([captcha(200, 70, text_rgb=red, back_rgb=teal, seed=i) for i in range(5)], longest_label=5)
    assert choice.channels == 3 and choice.height == 64 and "colour" in choice.why
    plain = choose_input([captcha(200, 70, seed=i) for i in range(5)], longest_label=5)
    assert plain.channels == 1  # black on white, stored as RGB: no colour worth reading


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_an_rgb_checkpoint_reads_rgb_input_as_it_was_trained(tmp_path, backend):
    cs = Charset("abc")
    pre = PreprocessConfig(height=32, width=96, channels=3, resize="pad")
    torch.manual_seed(0)
    model = CRNN(CRNNConfig(num_classes=cs.num_classes, height=32, width=96, channels=(8, 16, 16, 16, 24), hidden=32,
                            lstm_layers=1, in_channels=3)).eval()
    path = tmp_path / "rgb.pt"
    atomic_save(make_checkpoint(model, cs, pre), path)
    if backend == "onnx":
        export_onnx(path)
    reader = CaptchaReader(path, backend=backend)
    assert reader.backend == backend and reader.preprocess.channels == 3
    image = captcha(120, 40, text_rgb=(200, 80, 80), back_rgb=(60, 150, 117))
    batch = preprocess(image, pre).unsqueeze(0)
    assert batch.shape == (1, 3, 32, 96)
    with torch.no_grad():
        expected = model(batch).float().log_softmax(2).numpy()
    np.testing.assert_allclose(reader.runner.log_probs(batch), expected, atol=1e-4)
    assert reader.read(image) == greedy_texts(expected.argmax(2), cs)[0]
    # the three channels reach the model: the image's gray version gives other outputs
    gray = np.repeat(np.asarray(Image.fromarray(image).convert("L"))[..., None], 3, axis=2)
    assert not np.allclose(reader.runner.log_probs(preprocess(gray, pre).unsqueeze(0)), expected, atol=1e-3)
