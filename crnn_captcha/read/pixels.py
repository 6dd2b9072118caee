"""In-memory pixels of every kind (a decoded PIL image in any mode, numpy arrays of any dtype,
PyTorch tensors of any layout) made uint8 gray (H, W) or RGB (H, W, 3), with one-line errors."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..errors import ImageError

if TYPE_CHECKING:
    import torch

#: Images with more pixels than this are refused before they are decoded (a decompression bomb
#: or a wrong file); a captcha is a few thousand pixels.
MAX_PIXELS = 16_000_000


def printable(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, so it stays on one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def short(e: BaseException) -> str:
    text = printable(" ".join(str(e).split()))[:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def pil_to_array(img: Image.Image, name: str, color: bool) -> np.ndarray:
    """Any PIL mode -> uint8 (H, W) gray or (H, W, 3) RGB; transparency is laid on white."""
    try:
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            with np.errstate(invalid="ignore"):  # NaN pixels are refused below, in one line, not warned of here
                wide = np.asarray(img, dtype=np.float64)
            return array_to_pixels(_wide_to_uint8(wide, mode, name), name, color)
        if mode == "P" or mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            rgba = img if mode == "RGBA" else img.convert("RGBA")
            if rgba.getextrema()[3][0] < 255:  # some transparency (most RGBA captchas have none)
                rgba = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            img = rgba
        return np.asarray(img.convert("RGB" if color else "L"), dtype=np.uint8)
    except ImageError:
        raise
    except Exception as e:  # a closed image, a bad transparency value, an unusual mode, ...
        raise ImageError(f"{name}: cannot convert image mode {img.mode} ({short(e)})") from None


def _wide_to_uint8(arr: np.ndarray, mode: str, name: str) -> np.ndarray:
    """16-bit, 32-bit integer or float pixels -> uint8, refusing NaN and infinities (as arrays are)."""
    if not np.all(np.isfinite(arr)):
        raise ImageError(f"{name}: image holds NaN or infinite values")
    top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
    if mode in ("I", "F") and arr.max() <= 255:
        top = 255.0
    if mode == "F" and arr.max() <= 1.0:
        top = 1.0  # floats in [0, 1]
    return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def array_to_pixels(arr: np.ndarray, name: str, color: bool) -> np.ndarray:
    """(H, W), (H, W, 1|3|4) array, uint8/uint16/bool/int/float -> uint8 gray (H, W) or RGB (H, W, 3)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: wrong shape {tuple(arr.shape)}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: empty image of shape {tuple(arr.shape)}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageError(f"{name}: {arr.shape[1]}x{arr.shape[0]} pixels, more than the {MAX_PIXELS:,} allowed")
    arr = _to_uint8(arr, name)
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2) if color else arr)
    mode = "RGB" if arr.shape[2] == 3 else "RGBA"
    return pil_to_array(Image.fromarray(np.ascontiguousarray(arr), mode), name, color)


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageError(f"{name}: array holds NaN or infinite values")
        scale = 255.0 if arr.max() <= 1.0 else 1.0  # floats in [0, 1] or in [0, 255]
        return np.clip(arr.astype(np.float64) * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8)
    raise ImageError(f"{name}: unsupported array dtype {arr.dtype} or values outside 0-255")


def is_tensor(src: Any) -> bool:
    """Whether ``src`` is a PyTorch tensor (False, without importing torch, where torch is not loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(src, torch.Tensor)


def tensor_to_array(t: torch.Tensor, name: str) -> np.ndarray:
    """A tensor of any layout and dtype -> a numpy array (H, W) or (H, W, C)."""
    import torch  # loaded already: the caller made the tensor

    numpy_dtypes = {torch.uint8, torch.bool, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
                    torch.float32, torch.float64, getattr(torch, "uint16", torch.uint8)}
    if t.is_nested or t.device.type == "meta":
        raise ImageError(f"{name}: a {'nested' if t.is_nested else 'meta'} tensor holds no pixels to read")
    shape = tuple(t.shape)
    if len(shape) not in (2, 3):  # before any copy: to_dense() of a large sparse tensor would allocate it whole
        raise ImageError(f"{name}: wrong shape {shape} for a tensor; expected (H, W) or (C, H, W)")
    if len(shape) == 3 and shape[0] not in (1, 3, 4):
        raise ImageError(f"{name}: wrong shape {shape} for a tensor; expected (H, W) or (C, H, W) with C 1, 3 or 4 "
                         "((H, W, C) is a numpy array's layout: permute it to (C, H, W))")
    if len(shape) in (2, 3) and shape[-1] * shape[-2] > MAX_PIXELS:  # before any copy or conversion
        raise ImageError(f"{name}: {shape[-1]}x{shape[-2]} pixels, more than the {MAX_PIXELS:,} allowed")
    try:
        if t.layout != torch.strided:
            t = t.to_dense()
        if t.is_quantized:
            t = t.dequantize()
        if t.is_complex():
            raise ImageError(f"{name}: complex tensors are not images")
        t = t.detach().cpu().resolve_conj().resolve_neg()
        if t.dtype not in numpy_dtypes:
            t = t.to(torch.float64 if t.is_floating_point() else torch.int64)  # bfloat16, float8, uint32, ...
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"{name}: cannot read this tensor ({short(e)})") from None
    if t.ndim == 3:
        t = t.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
    return t.numpy()
