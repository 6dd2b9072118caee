"""Start a model from another one: a shipped model (the general reader by default), a run's
checkpoint, or a glyph-pretrained backbone.

    from crnn_captcha.training.transfer import start_from
    notes = start_from(model, charset, "pretrained")    # or a path; returns one line per choice made

What carries over, when the source is a whole CRNN: the backbone and the LSTM, and the output rows of
the characters both alphabets share (and the blank's); characters the source never learned get fresh
rows. The input may differ in height (the LSTM reads a fixed number of feature rows, so any height
that is a multiple of 32 fits), in width (the LSTM reads any number of frames), and in colour: a
gray model's first convolution is the sum of a colour model's three input channels, which is
exactly what the colour model computes on a gray image (R = G = B); a colour model started from a
gray one gets a third of the gray weights in each channel. From a glyph checkpoint only the backbone
carries over.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, TrainingError
from ..read.charset import Charset
from ..read.checkpoint import load_checkpoint
from ..read.model import CRNN
from ..read.shipped import MODELS, model_path

FIRST_CONV = "backbone.features.0.0.weight"


def source_path(init: str) -> Path | None:
    """The checkpoint ``init`` names: a shipped model ("pretrained", "general", ...), "scratch"
    (none) or a path."""
    if init == "scratch":
        return None
    if init in MODELS:
        path = model_path(init)
        if not path.exists():
            raise CheckpointError(f"{path}: the shipped {init} model is missing from this install; "
                                  "train with --init scratch, or reinstall")
        return path
    return Path(init)


def source_architecture(init: str) -> dict[str, Any] | None:
    """The model settings (channels, hidden, lstm_layers) of the checkpoint ``init`` names, which a
    model started from it must share; None when it starts from scratch or a glyph backbone."""
    path = source_path(init)
    if path is None:
        return None
    ckpt = load_checkpoint(path, kind=None)
    config = ckpt["model_config"]
    if ckpt.get("kind", "crnn") == "glyph":
        return {"channels": tuple(config["channels"])}
    return {k: (tuple(config[k]) if k == "channels" else config[k]) for k in ("channels", "hidden", "lstm_layers")}


def _adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """The first convolution's weights for another number of input channels (see the module notes)."""
    have = weight.shape[1]
    if have == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    return weight.expand(-1, in_channels, -1, -1) / in_channels


def start_from(model: CRNN, charset: Charset, init: str) -> list[str]:
    """Copy what carries over from the checkpoint ``init`` names into ``model`` (whose alphabet is
    ``charset``); returns log lines saying what came from where.

    Raises:
        CheckpointError: the checkpoint cannot be read.
        TrainingError: its architecture does not fit ``model``.
    """
    path = source_path(init)
    if path is None:
        return ["start: from scratch (random weights)"]
    ckpt = load_checkpoint(path, kind=None)
    source = {k: v for k, v in ckpt["state_dict"].items()}
    if FIRST_CONV in source:
        source[FIRST_CONV] = _adapt_first_conv(source[FIRST_CONV], model.config.in_channels)
    target = model.state_dict()
    glyph = ckpt.get("kind", "crnn") == "glyph"
    keys = [k for k in target if k.startswith("backbone.") or (not glyph and k.startswith("rnn."))]
    misfit = [k for k in keys if k not in source or source[k].shape != target[k].shape]
    if misfit:
        raise TrainingError(f"{path}: its model does not fit this one (e.g. {misfit[0]}: "
                            f"{tuple(source[misfit[0]].shape) if misfit[0] in source else 'missing'} vs "
                            f"{tuple(target[misfit[0]].shape)}); give the same --channels/--hidden, or --init scratch")
    new_state = {k: source[k] for k in keys}
    notes = [f"start: {'backbone' if glyph else 'backbone and LSTM'} from {path}"]
    if not glyph:
        rows, kept, fresh = _head_rows(Charset(ckpt["charset"]), charset)
        weight, bias = target["head.weight"].clone(), target["head.bias"].clone()
        for new_row, old_row in rows.items():
            weight[new_row] = source["head.weight"][old_row]
            bias[new_row] = source["head.bias"][old_row]
        new_state.update({"head.weight": weight, "head.bias": bias})
        notes.append(f"output rows kept for the blank and {len(kept)} character(s) the source knows"
                     + (f"; fresh rows for {len(fresh)} new one(s): {''.join(fresh)!r}" if fresh else ""))
    model.load_state_dict(new_state, strict=False)
    return notes


def _head_rows(source: Charset, target: Charset) -> tuple[dict[int, int], list[str], list[str]]:
    """{target row: source row} for the blank and the shared characters; the shared and new characters."""
    rows = {0: 0}
    kept, fresh = [], []
    for i, ch in enumerate(target.chars, start=1):
        if ch in source:
            rows[i] = source.encode(ch)[0]
            kept.append(ch)
        else:
            fresh.append(ch)
    return rows, kept, fresh
