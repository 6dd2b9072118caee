"""Image loading and the one preprocessing function.

Training, evaluation and :class:`~crnn_captcha.CaptchaReader` all go through :func:`preprocess`
(or its parts, :func:`load_image`, :func:`resize_image` and :func:`to_tensor`, with augmentation
between the last two during training), and its parameters travel inside the checkpoint, so a reader
never prepares an image differently from how its model was trained.

Every problem with an input becomes an :class:`~crnn_captcha.errors.ImageError` whose one-line
message names the input. Reading never touches process-wide state (no warning filters, no PIL
settings), so it is safe from several threads and leaves a host application's own PIL use alone.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError
from .frames import CONFIDENT, CONFIDENT_FUSIONS, FRAME_MODES, frame_count, fuse_frames, read_frames
from .pixels import MAX_PIXELS, array_to_pixels, is_tensor, pil_to_array, printable, short, tensor_to_array

if TYPE_CHECKING:
    import torch

# Reading needs no PyTorch: a tensor can only be given by a caller that imported torch already, so
# torch is looked up where it is loaded, never imported here (see :func:`is_tensor`).
ImageInput = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray, "torch.Tensor"]

#: Files (and byte strings) larger than this are refused before they are read whole.
MAX_FILE_BYTES = 32 * 1024 * 1024
RESIZE_MODES = ("stretch", "pad")


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes the model's input; stored in every checkpoint.

    Attributes:
        height, width: the size of the model's input (the captcha v2 model reads 32x128).
        mean, std: values in [0, 1] are normalised as (x - mean) / std.
        max_aspect_error: an image whose width/height ratio differs from width/height by more
            than this factor is refused as the wrong shape (e.g. a single glyph given to a
            captcha reader); 0 disables the check.
        channels: 1 reads gray, 3 reads colour (RGB).
        resize: "stretch" scales width and height to the input size independently; "pad" keeps
            the image's aspect ratio and pads the rest with the colour of the image's border.
        x_scale: for "pad", how many times wider than its aspect ratio an image is drawn: the
            text is stretched across before padding, so characters a generator squeezed together
            span more of the model's frames (training chooses it so the typical image fills the width).
        frames: how an animated image's frames are fused into one picture (see :mod:`.frames`;
            training chooses it from its images); models trained before animated images were read
            as a whole read the first frame.
    """

    height: int = 32
    width: int = 128
    mean: float = 0.5
    std: float = 0.5
    max_aspect_error: float = 3.0
    channels: int = 1
    resize: str = "stretch"
    x_scale: float = 1.0
    frames: str = "first"

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise ValueError(f"preprocess {name} must be a whole number from 1 to 4096, got {value!r}")
        for name in ("mean", "std", "max_aspect_error", "x_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"preprocess {name} must be a finite number, got {value!r}")
        if self.std <= 0 or self.max_aspect_error < 0:
            raise ValueError(f"preprocess std must be > 0 and max_aspect_error >= 0, got {self.std!r}, {self.max_aspect_error!r}")
        if not 0.1 <= self.x_scale <= 16:
            raise ValueError(f"preprocess x_scale must be from 0.1 to 16, got {self.x_scale!r}")
        if self.x_scale != 1 and self.resize != "pad":
            raise ValueError(f"preprocess x_scale applies to resize 'pad' only, got {self.x_scale!r} with {self.resize!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"preprocess channels must be 1 (gray) or 3 (RGB), got {self.channels!r}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"preprocess resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}")
        if self.frames not in FRAME_MODES:
            raise ValueError(f"preprocess frames must be one of {', '.join(FRAME_MODES)}, got {self.frames!r}")

    @property
    def color(self) -> bool:
        return self.channels == 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def describe(src: Any) -> str:
    """A short one-line name for an input, used in error messages."""
    if isinstance(src, (str, os.PathLike)):
        return printable(os.fsdecode(src)) or "<empty path>"
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    if isinstance(src, Image.Image):
        return f"<PIL image {src.mode} {src.width}x{src.height}>"
    if isinstance(src, np.ndarray):
        return f"<array {src.dtype} {tuple(src.shape)}>"
    if is_tensor(src):
        if src.is_nested:
            return f"<nested tensor {src.dtype}>"
        return f"<tensor {src.dtype} {tuple(src.shape)}>"
    return f"<{type(src).__name__}>"


def file_problem(path: Path, what: str = "file", max_bytes: int | None = None) -> str | None:
    """Why ``path`` is not a readable regular file of at most ``max_bytes``, or None."""
    try:
        if not path.exists():
            return "a link that leads nowhere (a loop, or a missing target)" if path.is_symlink() else f"no such {what}"
        if path.is_dir():
            return f"is a directory, not a {what}"
        if not path.is_file():
            return f"not a regular {what} (a pipe, a socket or a device)"
        size = path.stat().st_size
    except OSError as e:  # a name too long for the file system, a permission, ...
        return f"cannot be read ({e.strerror or type(e).__name__})"
    if size == 0:
        return f"empty {what} (0 bytes)"
    if max_bytes is not None and size > max_bytes:
        return f"{what} is {size:,} bytes, more than the {max_bytes:,} allowed (not a captcha image)"
    return None


def _read_bytes(path: Path, name: str) -> bytes:
    problem = file_problem(path, "file", MAX_FILE_BYTES)
    if problem:
        raise ImageError(f"{name}: {problem}")
    try:
        with path.open("rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ImageError(f"{name}: cannot be read ({e.strerror or type(e).__name__})") from None


def _check_pixels(img: Image.Image, name: str) -> None:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name}: image is {w}x{h} ({w * h:,} pixels), more than the {MAX_PIXELS:,} "
                         "allowed (a decompression bomb or not a captcha)")
    if w == 0 or h == 0:
        raise ImageError(f"{name}: empty image ({w}x{h})")


#: The image formats opened, an allow-list checked before any decoder runs: the raster formats a
#: captcha can come in. Pillow would otherwise hand an EPS file to Ghostscript, and other formats to
#: decoders no captcha needs.
RASTER_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM", "TGA", "ICO", "AVIF", "MPO")
#: How PostScript, EPS (text and DOS binary) and PDF files start.
_DOCUMENT_MAGIC = (b"%!", b"\xc5\xd0\xd3\xc6", b"%PDF")


def _raster_formats() -> list[str]:
    """:data:`RASTER_FORMATS` that this Pillow can open."""
    Image.init()
    return [f for f in RASTER_FORMATS if f in Image.OPEN]


def _decode(data: bytes, name: str) -> Image.Image:
    """Encoded bytes -> a loaded PIL image, upright (EXIF orientation applied)."""
    if len(data) == 0:
        raise ImageError(f"{name}: empty input (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name}: input is more than the {MAX_FILE_BYTES:,} bytes allowed (not a captcha image)")
    if data.startswith(_DOCUMENT_MAGIC):
        raise ImageError(f"{name}: a PostScript, EPS or PDF document, not a raster image (those are not opened: "
                         "reading them would run an interpreter)")
    try:
        img = Image.open(io.BytesIO(data), formats=_raster_formats())
        _check_pixels(img, name)  # from the header, before anything is decoded
        img.load()  # decode now so a truncated file fails here, not later
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file of a kind read here ({', '.join(RASTER_FORMATS)})") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: refused as a decompression bomb (more than {MAX_PIXELS:,} pixels)") from None
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError, RuntimeError, ...
        raise ImageError(f"{name}: corrupt or truncated image ({short(e)})") from None
    # an animated image stays as it is: turning it upright would copy its first frame alone
    return img if frame_count(img) > 1 else _upright(img, name)


def _upright(img: Image.Image, name: str) -> Image.Image:
    """Apply EXIF orientation (a phone photo or an editor may store the pixels rotated)."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a corrupt EXIF block: read the pixels as stored
        return img


def _as_pil(src: ImageInput, name: str) -> Image.Image | None:
    """A path, encoded bytes or a PIL image -> a decoded PIL image (a still one upright); None for
    other inputs."""
    if isinstance(src, (str, os.PathLike)):
        try:
            path = Path(src)
        except (TypeError, ValueError) as e:
            raise ImageError(f"{name}: not a usable path ({short(e)})") from None
        return _decode(_read_bytes(path, name), name)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _decode(bytes(src), name)
    if isinstance(src, Image.Image):
        try:
            _check_pixels(src, name)
            src.load()
        except ImageError:
            raise
        except Exception as e:  # a closed file, a truncated file the caller opened, ...
            raise ImageError(f"{name}: cannot read the PIL image ({short(e)})") from None
        return src if frame_count(src) > 1 else _upright(src, name)
    return None


def _pil_pixels(img: Image.Image, name: str, color: bool, frames: str) -> np.ndarray:
    """A decoded PIL image -> uint8 pixels, its frames fused as ``frames`` says."""
    if frames == "first":
        return pil_to_array(img, name, color)
    return fuse_frames(read_frames(img, name, lambda frame: pil_to_array(frame, name, color)), frames)  # a still: one


def load_image(src: ImageInput, name: str | None = None, color: bool = False, frames: str = "first") -> np.ndarray:
    """Read any supported input as uint8 pixels at its own size: gray (H, W), or RGB (H, W, 3)
    with ``color``.

    Args:
        src: a path, encoded bytes, a PIL image, a numpy array ((H, W), (H, W, 3) or (H, W, 4);
            uint8, uint16, bool, small integers or float in [0, 1]) or a tensor ((H, W) or
            (C, H, W) with C in 1, 3, 4; any dtype, dense, sparse or quantized).
        name: how to call the source in errors (default: the path or a description).
        frames: how the frames of an animated image (GIF, APNG, WebP) become one picture
            (:data:`~.frames.FRAME_FUSIONS`); a still image is read as it is.

    Raises:
        ImageError: naming the source and what is wrong.
    """
    name = name or describe(src)
    img = _as_pil(src, name)
    if img is not None:
        return _pil_pixels(img, name, color, frames)
    if is_tensor(src):
        return array_to_pixels(tensor_to_array(src, name), name, color)
    if isinstance(src, np.ndarray):
        if src.dtype.kind not in "biuf":
            raise ImageError(f"{name}: unsupported array dtype {src.dtype}")
        return array_to_pixels(src, name, color)
    raise ImageError(f"{name}: unsupported input type {type(src).__name__}; give a path, bytes, a PIL image, "
                     "a numpy array or a tensor")


def load_frames(src: ImageInput, name: str | None = None, color: bool = False) -> list[np.ndarray]:
    """Every frame of an image (a still one, an array or a tensor gives one), as :func:`load_image`
    reads them, within the limits of :func:`.frames.read_frames`.

    Raises:
        ImageError: naming the source and what is wrong.
    """
    name = name or describe(src)
    img = _as_pil(src, name)
    if img is None:  # an array or a tensor: one frame
        return [load_image(src, name, color)]
    return read_frames(img, name, lambda frame: pil_to_array(frame, name, color))


def count_frames(src: ImageInput, name: str | None = None) -> int:
    """How many frames an image holds (1 for a still, an array or a tensor); only the first is decoded.

    Raises:
        ImageError: naming the source and what is wrong.
    """
    img = _as_pil(src, name or describe(src))
    return 1 if img is None else frame_count(img)


def load_for(src: ImageInput, cfg: PreprocessConfig, name: str | None = None) -> np.ndarray:
    """:func:`load_image` as ``cfg`` reads it: its colour and its fusion of frames."""
    return load_image(src, name, color=cfg.color, frames=cfg.frames)


def load_gray(src: ImageInput, name: str | None = None) -> np.ndarray:
    """:func:`load_image` as gray (H, W)."""
    return load_image(src, name, color=False)


def check_aspect(h: int, w: int, cfg: PreprocessConfig, name: str) -> None:
    """Refuse an image whose shape is far from the model's (see ``max_aspect_error``)."""
    if cfg.max_aspect_error:
        typical = cfg.width / cfg.x_scale  # the width of an image the input fits without padding
        ratio = (w / h) / (typical / cfg.height)
        if ratio > cfg.max_aspect_error or ratio < 1.0 / cfg.max_aspect_error:
            raise ImageError(f"{name}: wrong shape {w}x{h} (width x height); this model reads images shaped "
                             f"like {round(typical)}x{cfg.height} (within a factor {cfg.max_aspect_error:g} of that ratio)")


def resize_image(pixels: np.ndarray, cfg: PreprocessConfig, name: str = "image") -> np.ndarray:
    """Check the aspect ratio and bring uint8 pixels (gray or RGB) to the model's size."""
    h, w = pixels.shape[:2]
    check_aspect(h, w, cfg, name)
    if (h, w) == (cfg.height, cfg.width):
        return pixels
    mode = "L" if pixels.ndim == 2 else "RGB"
    img = Image.fromarray(pixels, mode)
    if cfg.resize == "stretch":
        return np.asarray(img.resize((cfg.width, cfg.height), Image.BILINEAR), dtype=np.uint8)
    wide = w * cfg.x_scale  # the width the image is drawn at, before scaling to the input
    scale = min(cfg.width / wide, cfg.height / h)
    nw, nh = max(1, min(cfg.width, round(wide * scale))), max(1, min(cfg.height, round(h * scale)))
    inner = img.resize((nw, nh), Image.BILINEAR)
    if (nw, nh) == (cfg.width, cfg.height):  # same aspect ratio: nothing to pad
        return np.asarray(inner, dtype=np.uint8)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).reshape(-1, channels)
    fill = tuple(int(v) for v in np.median(border, axis=0))  # the colour around the text
    canvas = Image.new(mode, (cfg.width, cfg.height), fill[0] if channels == 1 else fill)
    canvas.paste(inner, ((cfg.width - nw) // 2, (cfg.height - nh) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def to_array(pixels: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 pixels at model size, (H, W) or (H, W, 3) -> the normalised float32 input (C, H, W)."""
    x = pixels.astype(np.float32) / np.float32(255.0)
    x = x[None] if x.ndim == 2 else np.ascontiguousarray(x.transpose(2, 0, 1))
    return (x - np.float32(cfg.mean)) / np.float32(cfg.std)


def to_tensor(pixels: np.ndarray, cfg: PreprocessConfig) -> torch.Tensor:
    """:func:`to_array` as a PyTorch tensor (the same numbers: training and reading see one input)."""
    import torch

    return torch.from_numpy(to_array(pixels, cfg))


def preprocess_array(src: ImageInput, cfg: PreprocessConfig, name: str | None = None) -> np.ndarray:
    """Any supported input -> the model's input (C, H, W), C = ``cfg.channels``, as float32 numpy.

    Raises:
        ImageError: naming the source and what is wrong.
    """
    name = name or describe(src)
    return to_array(resize_image(load_for(src, cfg, name), cfg, name), cfg)


def drawn_at(cfg: PreprocessConfig, factor: float) -> PreprocessConfig:
    """``cfg`` with each image drawn ``factor`` times as wide again (its own ``x_scale`` times
    ``factor``); the shape check is left to the caller, which checks the image as given."""
    return cfg if factor == 1 else replace(cfg, x_scale=cfg.x_scale * factor, max_aspect_error=0)


def preprocess_candidates(src: ImageInput, cfg: PreprocessConfig, name: str | None = None,
                          widths: tuple[float, ...] = (1.0,)) -> list[np.ndarray]:
    """The model inputs to read ``src`` from, one per picture and width (the reader keeps the most
    confident reading). The picture is the image, or for an animated image under the "confident"
    frames one per fusion of :data:`~.frames.CONFIDENT_FUSIONS`; each is drawn at every width of
    ``widths``, as a factor of the model's own (``x_scale``).

    Raises:
        ImageError: naming the source and what is wrong.
    """
    name = name or describe(src)
    if cfg.frames == CONFIDENT:
        frames = load_frames(src, name, color=cfg.color)
        pictures = [fuse_frames(frames, how) for how in CONFIDENT_FUSIONS] if len(frames) > 1 else frames[:1]
    else:
        pictures = [load_for(src, cfg, name)]
    check_aspect(*pictures[0].shape[:2], cfg, name)  # the shape as given, whatever width it is drawn at
    inputs = []
    for width in widths:
        drawn = drawn_at(cfg, width)
        inputs += [to_array(resize_image(p, drawn, name), drawn) for p in pictures]
    return inputs


def preprocess(src: ImageInput, cfg: PreprocessConfig, name: str | None = None) -> torch.Tensor:
    """:func:`preprocess_array` as a PyTorch tensor (C, H, W).

    Raises:
        ImageError: naming the source and what is wrong.
    """
    import torch

    return torch.from_numpy(preprocess_array(src, cfg, name))
