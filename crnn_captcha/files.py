"""Files a run writes: checks made before any long work, and writes that are never seen half done."""
from __future__ import annotations

import os
import signal
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .errors import CaptchaWarning, OptionError


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


@contextmanager
def _ctrl_c_held():
    """Ctrl-C during the block takes effect at its end, so a write is finished, not cut off: cut
    inside ``torch.save``, the interrupt came out as an unrelated error from its zip writer (seen
    in CI: "unexpected pos"), a traceback and exit 1 instead of "stopped" and exit 130. Only the
    main thread can hold it; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:  # sent again, to whatever handled it before (Python's own raises KeyboardInterrupt)
        signal.raise_signal(signal.SIGINT)


def hold_lock(path: Path, name: str, refuse: Callable[[str], Exception], unlocked: str):
    """Take the lock file ``path`` for as long as this process runs (the system lets go of it when
    the process ends, however it ends). Returns the open lock file, which holds this process's id
    (None where the file system has no such locks: a warning naming ``name`` says so, and ends with
    ``unlocked``, what can then go wrong).

    Raises:
        the error ``refuse(holder)`` makes, where another process holds it.
    """
    try:
        import fcntl
    except ImportError:  # not on this system: no lock
        return None
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise refuse(holder) from None
    except OSError as e:  # a file system without such locks (some network mounts): go on without one
        handle.close()
        warnings.warn(f"{name}: cannot lock it ({e.strerror}); {unlocked}", CaptchaWarning, stacklevel=3)
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}\n")
    handle.flush()
    return handle


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, then rename it into place, so a
    reader never sees a half-written file; the temporary file is removed if ``write`` fails. A
    Ctrl-C meanwhile is raised once the file is in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with _ctrl_c_held():
            try:
                write(tmp)
            except OSError as e:  # name the file asked for, not the temporary one beside it
                if e.filename is None or os.fspath(e.filename) != tmp:
                    raise
                raise OSError(e.errno, e.strerror, str(path)) from None
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


