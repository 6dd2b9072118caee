"""Animated captchas (GIF, APNG, WebP): every frame read within limits, fused as the checkpoint says."""
from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from crnn_captcha import CaptchaReader
from crnn_captcha.errors import ImageError
from crnn_captcha.read import frames as frames_module
from crnn_captcha.read.checkpoint import atomic_save, checksums, default_checkpoint, load_checkpoint
from crnn_captcha.read.frames import fuse_frames
from crnn_captcha.read.images import PreprocessConfig, load_frames, load_image
from synth import noisy_gif, strips_gif

SAMPLE = Path(__file__).resolve().parent.parent / "crnn_captcha" / "samples" / "8xypd.png"
SAMPLE_TEXT = "8xypd"


def sample_image() -> Path:
    return SAMPLE


def with_frames(tmp_path, how: str):
    """The shipped captcha v2 checkpoint, saved with another fusion of frames."""
    ckpt = load_checkpoint(default_checkpoint())
    ckpt["preprocess"] = {**ckpt["preprocess"], "frames": how}
    ckpt["checksums"] = checksums(ckpt)
    path = tmp_path / f"{how}.pt"
    atomic_save(ckpt, path)
    return path


# ----- loading frames --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_every_frame_is_read_and_ink_fusion_rebuilds_the_whole_text(fmt):
    still = Image.open(sample_image())
    data = strips_gif(still, 5, fmt)
    frames = load_frames(data)
    assert len(frames) == 5
    gray = np.asarray(still.convert("L"))
    # no single frame shows the text; together (each pixel from the frame that draws it) they are the still
    assert all(np.count_nonzero(f != np.median(gray)) < 0.4 * gray.size for f in frames)
    assert np.array_equal(fuse_frames(frames, "ink"), gray)
    assert np.array_equal(load_image(data, frames="ink"), gray)
    assert np.array_equal(load_image(data, frames="first"), frames[0])
    # a PIL image opened by the caller reads the same, and is left at its frame
    img = Image.open(io.BytesIO(data))
    assert np.array_equal(load_image(img, frames="ink"), gray) and img.tell() == 0


def test_fusions_keep_what_they_say():
    still = np.full((4, 6), 200, np.uint8)
    mark = still.copy()
    mark[1, 1] = 0  # a mark in one frame of five
    frames = [mark] + [still] * 4
    assert fuse_frames(frames, "ink")[1, 1] == 0  # every mark any frame shows
    assert fuse_frames(frames, "median")[1, 1] == 200  # what one frame shows is dropped
    assert fuse_frames(frames, "mean")[1, 1] == 160
    assert fuse_frames(frames, "first")[1, 1] == 0
    light = [255 - f for f in frames]  # light ink on a dark ground: ink still finds it
    assert fuse_frames(light, "ink")[1, 1] == 255
    rgb = [np.stack([f] * 3, axis=-1) for f in frames]
    assert fuse_frames(rgb, "ink").shape == (4, 6, 3) and tuple(fuse_frames(rgb, "ink")[1, 1]) == (0, 0, 0)
    with pytest.raises(ValueError, match="frames must be one of"):
        fuse_frames(frames, "max")


def gif_bytes(frames, **save):
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0, **save)
    return buf.getvalue()


PALETTE = [255, 255, 255, 0, 0, 0, 255, 0, 255, 128, 128, 128] + [0] * 756  # white, black, key, gray


def square(x: int, ground: int = 0, ink: int = 1) -> Image.Image:
    """A 40x20 palette frame: a square at ``x`` on ``ground`` (index 2 is the transparent key)."""
    img = Image.new("P", (40, 20), ground)
    img.putpalette(PALETTE)
    ImageDraw.Draw(img).rectangle((x, 5, x + 8, 13), fill=ink)
    return img


@pytest.mark.parametrize("disposal, kept", [(1, True), (2, False)])
def test_disposal_is_applied_as_a_browser_shows_it(disposal, kept):
    # frame 2 draws a second square on a see-through ground; the first frame stays under it (disposal 1:
    # do not dispose) or is cleared to the background first (2)
    data = gif_bytes([square(2), square(25, ground=2)], disposal=[disposal, 1], transparency=2, optimize=False)
    frames = load_frames(data)
    assert frames[1][9, 28] == 0
    assert (frames[1][9, 5] == 0) == kept
    assert frames[1][2, 20] == 255


def test_transparent_pixels_show_the_frame_beneath_and_white_at_the_start():
    first = square(2, ground=1, ink=2)  # black, with a see-through square
    second = square(25, ground=2, ink=3)  # a gray square, the rest see-through
    frames = load_frames(gif_bytes([first, second], transparency=2, disposal=1, optimize=False))
    assert frames[0][9, 5] == 255 and frames[0][2, 20] == 0  # transparency laid on white
    assert frames[1][9, 28] == 128 and frames[1][2, 20] == 0 and frames[1][9, 5] == 255  # the first shows through


def raw_gif(size, frame_sizes, reps=1) -> bytes:
    """A GIF whose logical screen is ``size`` and whose frames declare ``frame_sizes`` (their pixel
    data the 1x1 frame Pillow writes: a decoder must refuse them before it decodes)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1), 128).save(buf, "GIF")
    one = buf.getvalue()
    at = one.index(b"\x2c")
    head, body = b"GIF89a" + one[6:at], one[at:-1]
    head = head[:6] + struct.pack("<HH", *size) + head[10:]
    gce = b"\x21\xf9\x04\x00\x0a\x00\x00\x00"
    frames = b""
    for w, h in frame_sizes:
        frame = bytearray(body)
        frame[5:9] = struct.pack("<HH", w, h)
        frames += gce + bytes(frame)
    return head + frames * reps + b"\x3b"


def test_ten_thousand_frames_are_refused_fast_in_one_line(tmp_path):
    path = tmp_path / "many.gif"
    path.write_bytes(raw_gif((1, 1), [(1, 1)], reps=10_000))
    start = time.perf_counter()
    with pytest.raises(ImageError) as err:
        load_image(path, frames="ink")
    assert time.perf_counter() - start < 2.0
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "10,000 frames" in message and \
        f"{frames_module.MAX_FRAMES} allowed" in message
    assert load_image(path, frames="first").shape == (1, 1)  # the first frame alone stays cheap


def test_a_frame_larger_than_its_screen_is_refused_before_it_is_decoded(tmp_path):
    path = tmp_path / "bomb.gif"
    path.write_bytes(raw_gif((1, 1), [(1, 1), (5000, 5000)]))  # 25 M pixels, under Pillow's own bomb limit
    start = time.perf_counter()
    with pytest.raises(ImageError) as err:
        load_image(path, frames="median")
    assert time.perf_counter() - start < 2.0
    message = str(err.value)
    assert "\n" not in message and "frame 2" in message and "5000x5000" in message and str(path) in message


def test_too_many_pixels_over_all_frames_are_refused(monkeypatch):
    monkeypatch.setattr(frames_module, "MAX_FRAME_PIXELS", 40 * 20 * 2)
    with pytest.raises(ImageError, match=r"3 frames of 40x20 are 2,400 pixels, more than the 1,600 allowed"):
        load_image(gif_bytes([square(2), square(15), square(28)], optimize=False), frames="mean")


def test_a_slow_decode_is_cut_off(monkeypatch):
    monkeypatch.setattr(frames_module, "MAX_FRAME_SECONDS", -1.0)  # any decode is too slow
    with pytest.raises(ImageError, match="took more than"):
        load_image(gif_bytes([square(2), square(15)], optimize=False), frames="ink")


def test_a_corrupt_later_frame_is_one_line():
    data = gif_bytes([square(2), square(15), square(28)], optimize=False)
    cut = data[:len(data) - 30]  # the last frame's pixels cut short
    with pytest.raises(ImageError) as err:
        load_image(cut, frames="ink")
    assert "\n" not in str(err.value) and "frame" in str(err.value)


def test_still_images_read_the_same_under_every_fusion():
    still = sample_image()
    first = load_image(still, color=True)
    for how in frames_module.FRAME_FUSIONS:
        assert np.array_equal(load_image(still, color=True, frames=how), first)


# ----- the checkpoint's fusion is the reader's -------------------------------------------------
def test_preprocess_frames_is_checked_and_older_checkpoints_read_the_first_frame():
    with pytest.raises(ValueError, match="preprocess frames must be one of"):
        PreprocessConfig(frames="max")
    assert PreprocessConfig.from_dict({"height": 32, "width": 128}).frames == "first"


@pytest.mark.slow
def test_the_fusion_stored_in_the_checkpoint_is_the_one_read(tmp_path):
    gif = strips_gif(Image.open(sample_image()), 5)
    ink = CaptchaReader(with_frames(tmp_path, "ink"), device="cpu", backend="torch")
    first = CaptchaReader(with_frames(tmp_path, "first"), device="cpu", backend="torch")
    assert ink.preprocess.frames == "ink" and first.preprocess.frames == "first"
    assert ink.read(gif) == SAMPLE_TEXT
    assert first.read(gif) != SAMPLE_TEXT  # one strip of five


@pytest.mark.slow
def test_onnx_and_pytorch_agree_on_an_animated_image(tmp_path):
    from crnn_captcha.export import main as export_main

    path = with_frames(tmp_path, "ink")
    assert export_main(["--onnx", "--checkpoint", str(path)]) == 0
    onnx = CaptchaReader(path, device="cpu", backend="onnx")
    torch_reader = CaptchaReader(path, device="cpu", backend="torch")
    assert onnx.backend == "onnx" and onnx.preprocess.frames == "ink"
    gifs = [strips_gif(Image.open(sample_image()), parts) for parts in (2, 3, 5)]
    got, want = onnx.predict_batch(gifs), torch_reader.predict_batch(gifs)
    assert [r.text for r in got] == [r.text for r in want] == [SAMPLE_TEXT] * 3
    assert np.allclose([r.confidence for r in got], [r.confidence for r in want], atol=1e-4)


def test_the_gallery_shows_the_fused_picture(tmp_path):
    from crnn_captcha.data.scoring import gallery

    path = tmp_path / "strips.gif"
    path.write_bytes(strips_gif(Image.open(sample_image()), 5))
    still = np.asarray(Image.open(sample_image()).convert("RGB"))
    for how, whole in (("ink", True), ("first", False)):
        gallery(tmp_path / f"{how}.png", [(path, SAMPLE_TEXT, "8")], frames=how)
        cell = np.asarray(Image.open(tmp_path / f"{how}.png").convert("RGB"))[:still.shape[0], :still.shape[1]]
        assert np.array_equal(cell, still) == whole


def test_the_shipped_reader_reads_fading_text_and_moving_noise_alike():
    # a model trained on stills stores "confident": the ink and median pictures are read, the surer kept
    reader = CaptchaReader(device="cpu")
    assert reader.preprocess.frames == "confident"
    assert reader.read(strips_gif(Image.open(sample_image()), 5)) == SAMPLE_TEXT  # ink shows it whole
    for seed in range(3):
        gif = noisy_gif(Image.open(sample_image()), seed=seed)
        assert reader.read(load_image(gif, frames="ink")) != SAMPLE_TEXT  # every stroke of every frame
        assert reader.read(gif) == SAMPLE_TEXT == reader.read(load_image(gif, frames="median"))
        assert reader.read_batch([gif, SAMPLE]) == [SAMPLE_TEXT, SAMPLE_TEXT]  # mixed with a still in a batch


# ----- training chooses the fusion from its images ----------------------------------------------
def family_samples(tmp_path, name: str, n: int = 24):
    """``n`` images of a development family (scripts/make_family.py) as training samples."""
    import sys

    from crnn_captcha.data.labels import Sample

    sys.path.insert(0, str(SAMPLE.parents[2] / "scripts"))
    try:
        import make_family
    finally:
        sys.path.pop(0)
    family = make_family.FAMILIES[name]
    samples = []
    for i in range(n):
        label, image = make_family.make_image(family, "train", i, 0)
        path = tmp_path / f"{name}{i}{family.suffix}"
        if isinstance(image, list):
            image[0].save(path, "GIF", save_all=True, append_images=image[1:], duration=100, disposal=1)
        else:
            image.save(path)
        samples.append(Sample(path, label))
    return samples


@pytest.mark.slow
def test_training_measures_which_fusion_its_animated_images_need(tmp_path):
    from crnn_captcha.training.frame_choice import STILLS, UNMEASURED, choose_frames

    fade, noise = family_samples(tmp_path, "fade"), family_samples(tmp_path, "movenoise")
    how, why = choose_frames(fade, "pretrained")
    assert how == "ink" and "24 of 24 sampled training images are animated" in why and "ink " in why, why
    assert choose_frames(noise, "pretrained")[0] == "median"
    assert choose_frames(noise, "scratch") == (UNMEASURED, f"frames: {UNMEASURED} (24 of 24 sampled training images "
                                                          "are animated; no start model to measure the fusions with)")
    assert choose_frames(family_samples(tmp_path, "fade_still", 5), "pretrained")[0] == STILLS


def test_older_runs_keep_reading_the_first_frame_and_bad_values_are_refused(capsys):
    from crnn_captcha.train import main as train_main
    from crnn_captcha.training.recipe import TrainConfig

    assert TrainConfig.from_dict({"train": "t.csv", "val": "v.csv"}).frames == "first"
    assert TrainConfig.from_dict({"train": "t.csv", "val": "v.csv", "frames": "median"}).frames == "median"
    with pytest.raises(SystemExit) as stop:
        train_main(["--train", "t.csv", "--val", "v.csv", "--frames", "max"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--frames" in err[0] and "'max'" in err[0], err
