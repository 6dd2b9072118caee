"""The CRNN: a CNN backbone, a bidirectional LSTM and a linear head that returns CTC logits.

The CTC loss and decoding live in :mod:`crnn_captcha.read.ctc`, so the module stays a plain
``nn.Module`` that is easy to test and export.
"""
from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .ctc import frames_needed

#: Input pixels per output frame: the backbone pools the width twice by 2.
PIXELS_PER_FRAME = 4
#: Backbone feature rows per frame in every model trained today: fixed, so the LSTM's input does not
#: depend on the input height and a (pretrained) model carries over between heights.
FEATURE_ROWS = 2


#: The bounds of a model's whole-number settings: far beyond any captcha model, far below a size
#: that would exhaust memory.
_INT_RANGES = {"num_classes": (2, 100_000), "height": (16, 1024), "width": (4, 8192), "channels": (1, 2048),
               "hidden": (1, 4096), "lstm_layers": (1, 16), "max_label_length": (1, 1024), "in_channels": (1, 4)}


def _whole(value: Any, name: str, low: int, high: int) -> int:
    """``value`` as an int (numpy's integers too; bools and floats refused) from ``low`` to ``high``."""
    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or not low <= number <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return number


@dataclass
class CRNNConfig:
    """Everything needed to rebuild a :class:`CRNN`; stored in every checkpoint.

    Attributes:
        num_classes: outputs per frame: the characters plus the CTC blank (index 0).
        height, width: input size.
        channels: output channels of the five conv blocks.
        hidden: LSTM hidden size per direction.
        lstm_layers: stacked bidirectional LSTM layers.
        dropout: dropout before the head (and between LSTM layers).
        max_label_length: the longest label the model must read; checked against the frames.
        in_channels: 1 for gray input, 3 for colour (RGB).
        rows: feature rows the LSTM reads per frame. None: all height/16 rows (the first models);
            a number: the backbone's rows are averaged down to it, so the LSTM's input does not depend
            on the input height and a pretrained model fits any height that is a multiple of 16 * rows.
    """

    num_classes: int
    height: int = 32
    width: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 64, 96)
    hidden: int = 64
    lstm_layers: int = 1
    dropout: float = 0.2
    max_label_length: int = 5
    in_channels: int = 1
    rows: int | None = None

    def __post_init__(self) -> None:
        self._check_values()
        self.channels = tuple(self.channels)
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (gray) or 3 (RGB), got {self.in_channels}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (a character and the blank), got {self.num_classes}")
        if len(self.channels) != 5:
            raise ValueError(f"channels needs 5 values, got {self.channels}")
        if self.height % 16 or self.width % PIXELS_PER_FRAME:
            raise ValueError(f"height must be a multiple of 16 and width of {PIXELS_PER_FRAME}, got {self.height}x{self.width}")
        if self.rows is not None and (self.rows < 1 or (self.height // 16) % self.rows):
            raise ValueError(f"height {self.height} gives {self.height // 16} feature rows, not a multiple of rows={self.rows}")
        # CTC needs a frame per character and a blank between two equal neighbours, so a label of
        # length L can need up to 2L-1 frames ("ggg" -> g _ g _ g).
        need = frames_needed(self.max_label_length)
        if self.frames < need:
            raise ValueError(
                f"the model gives {self.frames} frames for width {self.width}, fewer than the "
                f"{need} (2L-1) that a {self.max_label_length}-character label with repeats needs"
            )

    def _check_values(self) -> None:
        """Each value a number of the right kind, within what a captcha model can be (a damaged or
        hand-edited config is refused before any layer is built: hidden=12000 would take GBs)."""
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if name == "channels" and (not isinstance(value, (list, tuple)) or not value):
                raise ValueError(f"channels must be a list of numbers, got {value!r}")
            whole = [_whole(v, name, low, high) for v in (value if name == "channels" else [value])]
            setattr(self, name, tuple(whole) if name == "channels" else whole[0])
        if self.rows is not None and (isinstance(self.rows, bool) or not isinstance(self.rows, int)):
            raise ValueError(f"rows must be a whole number or None, got {self.rows!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a number from 0 to below 1, got {self.dropout!r}")

    @property
    def feature_rows(self) -> int:
        """Rows of backbone features per frame that reach the LSTM."""
        return self.rows or self.height // 16

    @property
    def frames(self) -> int:
        """T, the number of output frames: the width after two 2x poolings."""
        return self.width // PIXELS_PER_FRAME

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CRNNConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Backbone(nn.Module):
    """Five conv blocks; (N, in_channels, H, W) -> (N, C, H/16, W/4).

    The height is pooled 16x and the width only 4x, so each output column is a frame covering a
    narrow vertical strip of the image.
    """

    def __init__(self, channels: tuple[int, ...] = CRNNConfig.channels, in_channels: int = 1):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.features = nn.Sequential(
            _block(in_channels, c1), nn.MaxPool2d(2),        # H/2,  W/2
            _block(c1, c2), nn.MaxPool2d(2),                 # H/4,  W/4
            _block(c2, c3), _block(c3, c4), nn.MaxPool2d((2, 1)),  # H/8,  W/4
            _block(c4, c5), nn.MaxPool2d((2, 1)),            # H/16, W/4
        )
        self.out_channels = c5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class CRNN(nn.Module):
    """(N, in_channels, H, W) images -> (N, T, num_classes) logits, T = W / 4."""

    def __init__(self, config: CRNNConfig):
        super().__init__()
        self.config = config
        self.backbone = Backbone(config.channels, config.in_channels)
        feat = self.backbone.out_channels * config.feature_rows
        self.row_pool = config.height // 16 // config.feature_rows  # 1: the rows go to the LSTM as they are
        self.rnn = nn.LSTM(
            feat, config.hidden, num_layers=config.lstm_layers, bidirectional=True, batch_first=True,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * config.hidden, config.num_classes)

    def fuse_batchnorm(self) -> "CRNN":
        """Fold each BatchNorm into its convolution, in place, for faster inference (eval only;
        the logits stay the same to float precision). Returns self."""
        if self.training:
            raise RuntimeError("fuse_batchnorm() is for a model in eval mode")
        for block in self.backbone.features:
            if isinstance(block, nn.Sequential) and isinstance(block[1], nn.BatchNorm2d):
                block[0] = fuse_conv_bn_eval(block[0], block[1])
                block[1] = nn.Identity()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)                      # (N, C, H/16, W/4)
        if self.row_pool > 1:
            f = nn.functional.avg_pool2d(f, (self.row_pool, 1))  # (N, C, rows, W/4)
        n, c, h, w = f.shape
        f = f.permute(0, 3, 1, 2).reshape(n, w, c * h)  # (N, C, H', W') -> (N, T=W', C*H')
        f, _ = self.rnn(f)                        # (N, T, 2*hidden)
        return self.head(self.dropout(f))         # (N, T, num_classes)


@dataclass
class GlyphConfig:
    """Everything needed to rebuild a :class:`GlyphClassifier`; stored in glyph checkpoints.

    Attributes:
        num_classes: the glyph classes (characters only: a classifier has no blank).
        channels: output channels of the backbone's five conv blocks.
    """

    num_classes: int
    channels: tuple[int, ...] = CRNNConfig.channels
    in_channels: int = 1

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)

    def to_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "channels": list(self.channels), "in_channels": self.in_channels}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GlyphConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class GlyphClassifier(nn.Module):
    """The same backbone with global pooling and a linear head: single-character pretraining."""

    def __init__(self, num_classes: int, channels: tuple[int, ...] = CRNNConfig.channels, in_channels: int = 1):
        super().__init__()
        self.config = GlyphConfig(num_classes, channels, in_channels)
        self.backbone = Backbone(self.config.channels, in_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(self.backbone.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.backbone(x)).flatten(1))  # (N, num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
