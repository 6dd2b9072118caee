"""The command-line layer every command shares: option groups, value checks, one error wrapper.

Each command module has ``main(argv=None, prog=None) -> int``; ``prog`` is how the user called it
(``crnn-captcha predict`` or ``python -m crnn_captcha.predict``), so ``--help`` names the real
program. :func:`run_main` turns the library's errors into one line on stderr and the exit code the
error class carries (see :mod:`crnn_captcha.errors`), so no traceback reaches a user; an error it
did not expect is one line too (exit 1), with its traceback only where ``CRNN_CAPTCHA_TRACEBACK``
is set.
"""
from __future__ import annotations

import argparse
import errno
import math
import os
import re
import select
import sys
import warnings
from typing import Callable

from .errors import INTERRUPTED, CaptchaError, CaptchaWarning, OptionError, one_line
from .read.device import installed
from .read.images import printable

#: Set (to anything) to let an unexpected error show its traceback instead of one line.
TRACEBACK_ENV = "CRNN_CAPTCHA_TRACEBACK"
#: The exit code when the output was closed early: 128 + SIGPIPE, what a Unix tool killed by it gives.
CLOSED_PIPE = 141


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (where it has one its help does not already name) and keeps the
    description's own line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """A usage error is one line that names the problem and where the options are listed (argparse
    prints the whole usage first, 26 lines for ``train``, and the line that matters last)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def plain(doc: str | None) -> str | None:
    """A docstring as a terminal shows it: ``x`` as x, :class:`~a.B` as B, :func:`a.f` as a.f."""
    if doc is None:
        return None
    doc = re.sub(r":\w+:`~[\w.]*?(\w+)`", r"\1", doc)
    return re.sub(r":\w+:`([^`]+)`", r"\1", doc).replace("``", "")


def make_parser(prog: str | None, module: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser named after how the command was called, described by the module's docstring."""
    return Parser(prog=prog or f"python -m {module}", description=plain(doc), formatter_class=HelpFormatter)


# ----- value checks (argparse types: a bad value is a usage error naming the option) -----------
def _number(kind: type, low: float | None, name: str, high: float | None = None) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {name}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is below the smallest allowed value, {low:g}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text!r} is above the largest allowed value, {high:g}")
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, "whole number of at least 1")
non_negative_int = _number(int, 0, "whole number of at least 0")
non_negative_float = _number(float, 0.0, "non-negative number")
positive_float = _number(float, 1e-300, "positive number")
learning_rate = _number(float, 1e-12, "learning rate", high=1.0)
aug_strength_type = _number(float, 0.0, "augmentation strength", high=4.0)
ratio = _number(float, 0.0, "non-negative number", high=1e6)
size = _number(int, 1, "whole number of at least 1", high=4096)
width_factor = _number(float, 0.25, "width factor", high=4.0)
spread_factor = _number(float, 1.0, "factor", high=4.0)


def thread_count(text: str) -> int:
    """A number of threads from 0 to four per core: more only slows the work down (and thousands
    exhaust memory)."""
    most = 4 * (os.cpu_count() or 1)
    return _number(int, 0, "whole number of at least 0", high=most)(text)


#: Counts whose product is held in memory or written out: bounded far above use, far below harm.
sheet_size = _number(int, 1, "whole number of at least 1", high=10_000)
copies = _number(int, 0, "whole number of at least 0", high=1_000)


def fraction(text: str) -> float:
    """A number from 0 up to (not including) 1."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not below 1")
    return value


def fraction_or_one(text: str) -> float:
    """A number from 0 to 1."""
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} is above 1")
    return value


def given_options(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The destinations of the options the command line gave explicitly (not left to defaults)."""
    probe = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            probe._add_action(_copy_without_default(action))
    known, _ = probe.parse_known_args(sys.argv[1:] if argv is None else argv)
    return set(vars(known))


def _copy_without_default(action: argparse.Action) -> argparse.Action:
    import copy

    clone = copy.copy(action)
    clone.default = argparse.SUPPRESS
    clone.required = False
    return clone


# ----- shared option groups --------------------------------------------------------------------
def add_reader_options(ap: argparse.ArgumentParser, allowed: bool = True) -> None:
    """--checkpoint, --device, --backend, --batch-size and the decoding options."""
    m = ap.add_argument_group("model")
    m.add_argument("--checkpoint", "--model", dest="checkpoint", metavar="NAME_OR_PATH",
                   help="a shipped model (captcha_v2, the default; general; pretrained) or a checkpoint file")
    m.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model runs")
    m.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="auto: ONNX Runtime on the CPU when an up-to-date export is beside the checkpoint")
    m.add_argument("--batch-size", type=positive_int, default=64, help="images per model call")
    m.add_argument("--widths", type=width_factor, nargs="+", default=[1.0], metavar="W",
                   help="read each image drawn at these widths (factors, 0.25-4) and keep the surest reading; "
                        "1 2 helps the general reader on squeezed text, at two reads an image")
    d = ap.add_argument_group("decoding")
    d.add_argument("--decoder", default="greedy", choices=["greedy", "beam"], help="best path or CTC beam search")
    d.add_argument("--beam-width", type=positive_int, default=10, help="beams kept by --decoder beam")
    d.add_argument("--length", type=positive_int, help="read exactly this many characters")
    if allowed:
        d.add_argument("--allowed", help="read only these characters")
    d.add_argument("--ignore-case", action="store_true",
                   help="for sites that ignore case: upper and lower case read as one, the text in lower case")


def reader_from_args(args: argparse.Namespace, threads: int | None = None):
    """The CaptchaReader the reader options ask for (``threads``: ONNX Runtime's, if given)."""
    from .read.ctc import DecodeOptions  # the reader's modules load here, so --help stays quick
    from .read.reader import CaptchaReader

    options = DecodeOptions(args.decoder, args.beam_width, args.length, getattr(args, "allowed", None),
                            args.ignore_case)
    return CaptchaReader(args.checkpoint, device=args.device, backend=args.backend, options=options, threads=threads,
                         widths=getattr(args, "widths", (1.0,)))


def add_label_options(group, skip_invalid: bool = True) -> None:
    """How file names give labels (for folders), and leaving out the invalid ones."""
    group.add_argument("--label-from", choices=["stem", "prefix", "regex"], default="stem",
                       help="for folders: the label is the file's stem, its part before the first '_', or "
                            "--label-regex's first group")
    group.add_argument("--label-regex", help="regular expression whose first group is the label (--label-from regex)")
    if skip_invalid:
        group.add_argument("--skip-invalid", action="store_true", help="leave out files whose names are not valid labels")


def add_training_options(ap: argparse.ArgumentParser, *, out: str, epochs: int | None, batch_size: int | None,
                         lr: float | None, height: int | None, width: int | None, aug_strength: float, channels: tuple[int, ...],
                         epoch_is: str) -> dict[str, argparse._ArgumentGroup]:
    """The options training and pretraining share, with each command's own defaults; returns the
    groups ("data", "model", "optimisation", "run") for the command to add its own options to."""
    d = ap.add_argument_group("data")
    d.add_argument("--skip-invalid", action="store_true", help="leave out files whose names are not valid labels")
    d.add_argument("--height", type=size, default=height,
                   help="input height in pixels" + ("" if height else " (default: chosen from the images)"))
    d.add_argument("--width", type=size, default=width,
                   help="input width in pixels" + ("" if width else " (default: chosen from the images)"))
    d.add_argument("--aug-strength", type=aug_strength_type, default=aug_strength,
                   help="scale of the augmentation, 0 (off) to 4")
    m = ap.add_argument_group("model")
    m.add_argument("--channels", type=positive_int, nargs=5, default=list(channels) if channels else None, metavar="C",
                   help="output channels of the five conv blocks" + ("" if channels else " (default: the start model's, "
                                                                     "or 16 32 64 64 96)"))
    o = ap.add_argument_group("optimisation")
    o.add_argument("--epochs", type=positive_int, default=epochs,
                   help=f"epochs to train; an epoch is {epoch_is}" + ("" if epochs else " (default: chosen from the set's size)"))
    o.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help="images per optimizer step" + ("" if batch_size else " (default: 16; 64 on a GPU from 1,000 training images)"))
    o.add_argument("--lr", type=learning_rate, default=lr,
                   help="peak learning rate" + ("" if lr else " (default at batch 16: 4e-3 from a pretrained start, "
                                                              "1e-3 from scratch; scaled with the batch)"))
    o.add_argument("--seed", type=non_negative_int, default=0, help="random seed (repeatable runs on the CPU)")
    r = ap.add_argument_group("run")
    r.add_argument("--out", default=out, help="folder for checkpoints and metrics")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train")
    r.add_argument("--threads", type=thread_count, default=0, help="CPU threads for torch (0: half the cores, at most 4)")
    return {"data": d, "model": m, "optimisation": o, "run": r}


#: What training, pretraining, exporting and the synthetic renderer need besides reading's packages.
TRAINING_PACKAGES = ("torch", "albumentations")


def require_training(command: str, also: tuple[str, ...] = ()) -> None:
    """Exit with one line naming what to install where the ``train`` extra is missing: called by
    each command that trains or renders before it imports the training code."""
    missing = [p for p in (*TRAINING_PACKAGES, *also) if not installed(p)]
    if missing:
        print(f"error: {command} needs {', '.join(missing)}, which reading alone does not: "
              'pip install "crnn_captcha[train]"', file=sys.stderr)
        raise SystemExit(OptionError.exit_code)


# ----- the error wrapper -----------------------------------------------------------------------
def command(build_parser: Callable[[str | None], argparse.ArgumentParser],
            work: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """A command's ``main(argv=None, prog=None) -> int``: parse, then :func:`run_main` the work."""

    def main(argv: list[str] | None = None, prog: str | None = None) -> int:
        args = build_parser(prog).parse_args(argv)
        return run_main(lambda: work(args))

    return main


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {one_line(message)}", file=sys.stderr, flush=True)


def run_main(work: Callable[[], int]) -> int:
    """Run a command's work; a library error or an OS error becomes one line and its exit code.

    The command owns its process, so here (and only here) warnings are set up for a terminal: the
    library's own warnings print as one ``warning:`` line each, and the notes image decoders make
    about the damaged files they still read (PIL's "Corrupt EXIF data", numpy casts) are dropped.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"numpy(\.|$)")
        warnings.filterwarnings("always", category=CaptchaWarning)
        warnings.showwarning = _warning_line
        return _run(work)


def _run(work: Callable[[], int]) -> int:
    try:
        return work()
    except CaptchaError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError as e:  # whoever read our output stopped (``| head``): end quietly, as Unix tools do
        if not _stdout_closed():
            return _os_error(e)  # another pipe broke: that is an error worth a line
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        except (OSError, ValueError):
            pass
        return CLOSED_PIPE
    except OSError as e:  # a folder that cannot be written, a disk that is full, ...
        return _os_error(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as e:  # not raised on purpose: still one line, with the way to see more
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"error: {unexpected(e)}", file=sys.stderr)
        return 1


def _os_error(e: OSError) -> int:
    """One line for an OSError, and its exit code."""
    where = f"{printable(os.fsdecode(e.filename))}: " if e.filename else ""
    print(f"error: {where}{e.strerror or one_line(e)}", file=sys.stderr)
    # the machine failed the work (a full disk, an I/O error): 1; a path it was given: 2
    return 1 if e.errno in (errno.ENOSPC, errno.EIO, errno.ENOMEM, errno.EDQUOT, errno.EPIPE) else OptionError.exit_code


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (the system flags its write end)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a stream of the caller's (no file behind it): not a pipe
        return False
    if not hasattr(select, "poll"):  # no way to ask here: a broken pipe is most likely the output's
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))


def unexpected(error: Exception) -> str:
    """The line for an error no check of ours raised: running out of memory (with what to try), or
    a fault in this library or one below it (with how to see the traceback)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":  # torch's, on a GPU
        return f"out of memory ({one_line(error)[:160]}); try a smaller --batch-size or fewer --workers"
    return (f"unexpected {type(error).__name__}: {one_line(error)} (a fault in crnn_captcha or a library it uses; "
            f"{TRACEBACK_ENV}=1 shows where, for a report)")
