"""Animated images (GIF, APNG, WebP): their frames, read within limits, and fused into one picture.

Many sites serve animated captchas: characters fade in and out so that no frame shows them all, or
one character is drawn a frame, or noise moves over still text. The model reads one picture, made
per pixel from all the frames by the fusion the checkpoint stores (training measures which one its
images need, see :mod:`crnn_captcha.training.frame_choice`). A still image is its own picture
under every fusion.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import ImageError, brief

#: How frames become one picture, per pixel: "first" the first frame alone; "median" the median
#: over frames (drops what moves, keeps what stays); "mean" their average; "ink" the frame value
#: farthest from the background colour (keeps every mark any frame shows).
FRAME_FUSIONS = ("first", "median", "mean", "ink")
#: A reader's way for a model that never saw an animation (one trained on stills): read the
#: pictures of :data:`CONFIDENT_FUSIONS` and keep the most confident reading. Where one picture is
#: needed without a model (training, a gallery), it is the first of them.
CONFIDENT = "confident"
CONFIDENT_FUSIONS = ("ink", "median")
#: What a checkpoint's preprocessing may say.
FRAME_MODES = (*FRAME_FUSIONS, CONFIDENT)
#: Limits that keep a hostile file cheap: frames read, decoded pixels over all frames (as many as
#: one still image may have), and time spent decoding.
MAX_FRAMES = 500
MAX_FRAME_PIXELS = 16_000_000
MAX_FRAME_SECONDS = 5.0


def frame_count(img: Image.Image) -> int:
    """How many frames a PIL image holds (1 for a still); GIF counts them without decoding."""
    try:
        return max(1, int(getattr(img, "n_frames", 1)))
    except Exception:  # a broken frame header: the first frame is read as a still
        return 1


def read_frames(img: Image.Image, name: str, to_pixels: Callable[[Image.Image], np.ndarray]) -> list[np.ndarray]:
    """Every frame of ``img`` as a browser shows it (Pillow's decoders apply disposal and blending),
    each made pixels by ``to_pixels`` and brought to the first frame's size, within
    :data:`MAX_FRAMES`, :data:`MAX_FRAME_PIXELS` and :data:`MAX_FRAME_SECONDS`; ``img`` is left at
    the frame it was at.

    Raises:
        ImageError: naming ``name`` and the limit passed, or the frame that is corrupt.
    """
    count, (w, h) = frame_count(img), img.size
    if count == 1:
        return [to_pixels(img)]
    if count > MAX_FRAMES:
        raise ImageError(f"{name}: {count:,} frames, more than the {MAX_FRAMES} allowed (not a captcha)")
    if count * w * h > MAX_FRAME_PIXELS:
        raise ImageError(f"{name}: {count} frames of {w}x{h} are {count * w * h:,} pixels, more than the "
                         f"{MAX_FRAME_PIXELS:,} allowed over all frames")
    start, deadline, total, out = img.tell(), time.monotonic() + MAX_FRAME_SECONDS, 0, []
    try:
        for i in range(count):
            try:
                img.seek(i)
            except EOFError:  # fewer frames than the header said
                break
            fw, fh = img.size  # a frame may declare a larger canvas than the first: checked before decoding
            total += fw * fh
            if total > MAX_FRAME_PIXELS:
                raise ImageError(f"{name}: frame {i + 1} is {fw}x{fh}, which brings the frames to {total:,} pixels, "
                                 f"more than the {MAX_FRAME_PIXELS:,} allowed")
            img.load()
            out.append(_fit(to_pixels(img), h, w))
            if time.monotonic() > deadline:
                raise ImageError(f"{name}: its frames took more than the {MAX_FRAME_SECONDS:g} s allowed to decode")
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: frame {len(out) + 1} is refused as a decompression bomb") from None
    except Exception as e:
        raise ImageError(f"{name}: corrupt or truncated frame {len(out) + 1} ({type(e).__name__}: {brief(e)})") from None
    finally:
        try:
            img.seek(start)
        except Exception:  # noqa: S110 - the frames are read; where the image stands matters no more
            pass
    return out


def _fit(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    """``frame`` cut or laid on white to (h, w)."""
    frame = frame[:h, :w]
    if frame.shape[:2] == (h, w):
        return frame
    whole = np.full((h, w, *frame.shape[2:]), 255, np.uint8)
    whole[:frame.shape[0], :frame.shape[1]] = frame
    return whole


def fuse_frames(frames: list[np.ndarray], how: str) -> np.ndarray:
    """Frames (uint8, each (H, W) or each (H, W, 3)) -> one picture of the same shape, as ``how``
    (one of :data:`FRAME_FUSIONS`) says."""
    if how == CONFIDENT:
        how = CONFIDENT_FUSIONS[0]
    if how not in FRAME_FUSIONS:
        raise ValueError(f"frames must be one of {', '.join(FRAME_MODES)}, got {how!r}")
    if how == "first" or len(frames) == 1:
        return frames[0]
    stack = np.stack(frames)
    if how == "median":
        return np.median(stack, axis=0).round().astype(np.uint8)
    if how == "mean":
        return stack.mean(axis=0, dtype=np.float32).round().astype(np.uint8)
    # ink: per pixel, the frame farthest from the background, the median colour of all frames' borders
    colour = stack.ndim == 4
    border = np.concatenate([stack[:, 0], stack[:, -1], stack[:, :, 0], stack[:, :, -1]], axis=1)
    background = np.median(border.reshape(-1, stack.shape[-1] if colour else 1), axis=0)
    far = np.abs(stack.astype(np.float32) - background.astype(np.float32))
    if colour:
        far = far.sum(axis=-1)
    pick = far.argmax(axis=0)[None]  # (1, H, W): the frame each pixel comes from
    return np.take_along_axis(stack, pick[..., None] if colour else pick, axis=0)[0]
