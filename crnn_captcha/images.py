"""Image loading and the one preprocessing function.

Training, evaluation and :class:`~crnn_captcha.CaptchaReader` all go through :func:`preprocess`
(or its two halves, :func:`load_gray` and :func:`to_tensor`, with augmentation in between during
training), and its parameters travel inside the checkpoint, so a reader never prepares an image
differently from how its model was trained.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from .errors import ImageError

ImageInput = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray, torch.Tensor]

#: Images with more pixels than this are refused before they are decoded (a decompression bomb
#: or a wrong file); a captcha is a few thousand pixels.
MAX_PIXELS = 16_000_000


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes the model's input; stored in every checkpoint.

    Attributes:
        height, width: the size every image is resized to (the captcha v2 images are 50x200).
        mean, std: the gray values in [0, 1] are normalised as (x - mean) / std.
        max_aspect_error: an image whose width/height ratio differs from width/height by more
            than this factor is refused as the wrong shape (e.g. a single glyph given to a
            captcha reader); 0 disables the check.
    """

    height: int = 32
    width: int = 128
    mean: float = 0.5
    std: float = 0.5
    max_aspect_error: float = 3.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def describe(src: Any) -> str:
    """A short name for an input, used in error messages."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    if isinstance(src, Image.Image):
        return f"<PIL image {src.mode} {src.width}x{src.height}>"
    if isinstance(src, np.ndarray):
        return f"<array {src.dtype} {tuple(src.shape)}>"
    if isinstance(src, torch.Tensor):
        return f"<tensor {src.dtype} {tuple(src.shape)}>"
    return f"<{type(src).__name__}>"


def _open_pil(data: Union[str, os.PathLike, bytes, bytearray], name: str) -> Image.Image:
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise ImageError(f"{name}: no such file")
        if path.is_dir():
            raise ImageError(f"{name}: is a directory, not an image file")
        if path.stat().st_size == 0:
            raise ImageError(f"{name}: empty file (0 bytes)")
        data = path.read_bytes()
    if len(data) == 0:
        raise ImageError(f"{name}: empty input (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(bytes(data)))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(
                    f"{name}: image is {w}x{h} ({w * h:,} pixels), more than the {MAX_PIXELS:,} "
                    "allowed (a decompression bomb or not a captcha)"
                )
            img.load()  # decode now so a truncated file fails here, not later
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name}: refused as a decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: corrupt or truncated image ({e})") from None
    return img


def _pil_to_gray(img: Image.Image, name: str) -> np.ndarray:
    """Any PIL mode -> uint8 gray array (H, W); transparency is laid on white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if mode in ("I", "F") and arr.max() <= 255:
            top = 255.0
        return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    try:
        return np.asarray(img.convert("L"), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise ImageError(f"{name}: cannot convert image mode {mode} to gray ({e})") from None


def _array_to_gray(arr: np.ndarray, name: str) -> np.ndarray:
    """(H, W), (H, W, 1|3|4) array, uint8/uint16/bool/float -> uint8 gray (H, W)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(
            f"{name}: wrong shape {tuple(arr.shape)}; expected (H, W), (H, W, 3) or (H, W, 4)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: empty image of shape {tuple(arr.shape)}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageError(f"{name}: array holds NaN or infinite values")
        scale = 255.0 if arr.max() <= 1.0 else 1.0  # floats in [0, 1] or in [0, 255]
        arr = np.clip(arr.astype(np.float64) * scale + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 255:
            arr = arr.astype(np.uint8)
        else:
            raise ImageError(f"{name}: unsupported array dtype {arr.dtype} or values outside 0-255")
    if arr.ndim == 2:
        return np.ascontiguousarray(arr)
    mode = "RGB" if arr.shape[2] == 3 else "RGBA"
    return _pil_to_gray(Image.fromarray(np.ascontiguousarray(arr), mode), name)


def load_gray(src: ImageInput, name: str | None = None) -> np.ndarray:
    """Read any supported input as a uint8 gray array (H, W), at its own size.

    Args:
        src: a path, encoded bytes, a PIL image, a numpy array ((H, W), (H, W, 3) or (H, W, 4);
            uint8, uint16 or float in [0, 1]) or a tensor ((H, W) or (C, H, W) with C in 1, 3, 4).
        name: how to call the source in errors (default: the path or a description).

    Raises:
        ImageError: naming the source and what is wrong.
    """
    name = name or describe(src)
    if isinstance(src, (str, os.PathLike, bytes, bytearray)):
        gray = _pil_to_gray(_open_pil(src, name), name)
    elif isinstance(src, Image.Image):
        if src.width * src.height > MAX_PIXELS:
            raise ImageError(f"{name}: image is {src.width}x{src.height}, too large")
        gray = _pil_to_gray(src, name)
    elif isinstance(src, torch.Tensor):
        t = src.detach().cpu()
        if t.ndim == 3:
            t = t.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
        gray = _array_to_gray(t.numpy(), name)
    elif isinstance(src, np.ndarray):
        gray = _array_to_gray(src, name)
    else:
        raise ImageError(f"{name}: unsupported input type {type(src).__name__}")
    if gray.shape[0] == 0 or gray.shape[1] == 0:
        raise ImageError(f"{name}: empty image")
    return gray


def resize_gray(gray: np.ndarray, cfg: PreprocessConfig, name: str = "image") -> np.ndarray:
    """Check the aspect ratio and resize a uint8 gray array to the model's size."""
    h, w = gray.shape
    if cfg.max_aspect_error:
        ratio = (w / h) / (cfg.width / cfg.height)
        if ratio > cfg.max_aspect_error or ratio < 1.0 / cfg.max_aspect_error:
            raise ImageError(
                f"{name}: wrong shape {w}x{h} (width x height); this model reads images shaped "
                f"like {cfg.width}x{cfg.height} (e.g. 200x50 captchas)"
            )
    if (h, w) == (cfg.height, cfg.width):
        return gray
    img = Image.fromarray(gray, "L").resize((cfg.width, cfg.height), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def to_tensor(gray: np.ndarray, cfg: PreprocessConfig) -> torch.Tensor:
    """uint8 gray (H, W) at model size -> normalised float tensor (1, H, W)."""
    x = torch.from_numpy(gray.astype(np.float32)).div_(255.0)  # astype copies: writable
    return x.sub_(cfg.mean).div_(cfg.std).unsqueeze(0)


def preprocess(src: ImageInput, cfg: PreprocessConfig, name: str | None = None) -> torch.Tensor:
    """Any supported input -> the model's input tensor (1, H, W).

    Raises:
        ImageError: naming the source and what is wrong.
    """
    name = name or describe(src)
    return to_tensor(resize_gray(load_gray(src, name), cfg, name), cfg)


# Let PIL refuse truncated files instead of padding them with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
