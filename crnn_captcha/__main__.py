"""The one command: ``crnn-captcha COMMAND ...`` (or ``python -m crnn_captcha COMMAND ...``).

    crnn-captcha predict img.png                    # read captchas
    crnn-captcha evaluate data/splits/test.csv      # accuracy on labelled captchas
    crnn-captcha split --src DIR --out data/splits  # 75/12.5/12.5 manifests
    crnn-captcha train --splits data/splits --out runs/mine
    crnn-captcha --version
    crnn-captcha COMMAND --help
"""
from __future__ import annotations

import importlib
import os
import sys

from ._version import __version__

#: command -> (module, one line for the command list)
COMMANDS = {
    "predict": ("predict", "read captcha images"),
    "evaluate": ("evaluate", "measure a checkpoint on labelled captchas"),
    "split": ("split", "split a folder of labelled captchas into train/val/test manifests"),
    "train": ("train", "train a reader on your captchas"),
    "pretrain": ("pretrain", "pretrain on synthetic captchas: the start train fine-tunes"),
    "glyphs": ("glyphs", "cut a leak-free glyph set from a split's captchas"),
    "augment": ("augment", "write a grid of augmented training images"),
    "synth": ("synth", "write a sheet of synthetic pretraining captchas or glyphs; list the fonts"),
    "export": ("export", "export a checkpoint to ONNX for the fast CPU path"),
    "serve": ("serve", "read captchas over HTTP (needs pip install \"crnn_captcha[serve]\")"),
    "label": ("label", "label a folder of captchas in the browser, the model proposing (needs the serve extra)"),
}


def program() -> str:
    """How the user called us: the console script's name, or python -m crnn_captcha."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m crnn_captcha" if name in ("__main__.py", "-c", "") else name


def usage(prog: str) -> str:
    width = max(len(c) for c in COMMANDS)
    rows = "\n".join(f"  {c:<{width}}  {help_}" for c, (_, help_) in COMMANDS.items())
    return (f"usage: {prog} COMMAND [options]   ({prog} COMMAND --help for a command's options)\n\n"
            f"commands:\n{rows}\n\n  --version  print the version and exit\n")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or program()
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(prog), end="")
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"crnn_captcha {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"{prog}: error: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"crnn_captcha.{COMMANDS[argv[0]][0]}")
    return module.main(argv[1:], prog=f"{prog} {argv[0]}")


if __name__ == "__main__":
    raise SystemExit(main())
