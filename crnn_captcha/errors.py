"""The library's errors: one base class, a subclass per kind of problem.

Every error the library raises on purpose derives from :class:`CaptchaError`; its message is one
line that names the input (a file, an option, a checkpoint field) and says what is wrong with it.
The command-line tools print that line and exit with the class's ``exit_code``:

==========  ==============================================================================
exit code   meaning
==========  ==============================================================================
0           everything asked for was done
1           the work failed on the data or was refused: images to read that are missing or
            unreadable, bad labels, an output that already exists, a training run that
            had to stop; what was done is kept
2           the command was called wrongly: a bad option value, or a checkpoint, manifest
            or output folder named on the command line that is missing or unusable
130         interrupted (Ctrl-C)
141         the output was closed early (a pipe into ``head``): nothing more is printed
==========  ==============================================================================

The classes also derive from the built-in exception they refine (``ValueError`` for bad values,
``RuntimeError`` for a run that cannot go on), so ``except ValueError`` keeps working.
"""
from __future__ import annotations

#: The exit code of a command, and the value a library run returns, when Ctrl-C stopped it (128 + SIGINT).
INTERRUPTED = 130


class CaptchaError(Exception):
    """Base class of the library's errors; the message is one line naming the input."""

    exit_code = 2


class ImageError(CaptchaError, ValueError):
    """An input that cannot be read as an image; the message names the source."""

    exit_code = 1


class CheckpointError(CaptchaError, ValueError):
    """A file that is not a usable checkpoint; the message names it and what is wrong."""


class LabelError(CaptchaError, ValueError):
    """Labels that cannot be used: bad file names or manifests, characters a model cannot read."""

    exit_code = 1


class UnknownCharacterError(LabelError):
    """A label (or an ``allowed`` set) holds a character that the charset does not know."""


class OptionError(CaptchaError, ValueError):
    """An option value that makes no sense (a negative beam width, an unknown decoder, ...)."""


class AllowedCharacterError(UnknownCharacterError, OptionError):
    """An ``allowed`` set (or ``--charset``) naming characters the model cannot read: a bad option."""

    exit_code = 2


class OverwriteError(CaptchaError, FileExistsError):
    """An output that already exists and would be overwritten; says how to go on."""

    exit_code = 1


class TrainingError(CaptchaError, RuntimeError):
    """A run that cannot go on (NaN loss, a clash with an earlier run); says what to do."""

    exit_code = 1


class CaptchaWarning(UserWarning):
    """Something worth knowing that does not stop the work (skipped files, duplicate rows, labels a
    model cannot read); the command-line tools print it as one ``warning:`` line."""


def brief(error: BaseException, limit: int = 200) -> str:
    """An error's own text with its white space folded to single spaces, cut at ``limit``: for
    quoting another library's message inside ours."""
    return " ".join(str(error).split())[:limit]


def one_line(error: BaseException) -> str:
    """An error's message as one line (newlines in file names and listings escaped)."""
    text = str(error).strip() or type(error).__name__
    return text.replace("\r", "\\r").replace("\n", "\\n")
