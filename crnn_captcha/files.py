"""Checks on the files and folders a run will write, made before any long work."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import OptionError


def check_out_folder(path: str | Path, option: str = "--out") -> Path:
    """An output folder that is not a file and can be written (made if missing), checked before
    any long work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OptionError(f"{option} {path} is a file, not a folder")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OptionError(f"{option} {path}: {existing} cannot be written")
    return path


def check_image_out(path: str | Path, option: str = "--out") -> Path:
    """An image file to write: a name Pillow knows how to save, in a folder that exists."""
    from PIL import Image

    path = Path(path)
    Image.init()
    if path.suffix.lower() not in Image.EXTENSION:
        raise OptionError(f"{option} {path}: not an image file name (end it in .png)")
    if not path.parent.is_dir() and str(path.parent) not in ("", "."):
        raise OptionError(f"{option} {path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise OptionError(f"{option} {path} is a folder, not a file name")
    return path
