"""crnn_captcha: read whole text CAPTCHAs with a CNN + BiLSTM + CTC model.

    from crnn_captcha import CaptchaReader
    CaptchaReader().read("226md.png")
"""
from ._version import __version__
from .errors import (
    AllowedCharacterError,
    CaptchaError,
    CaptchaWarning,
    CheckpointError,
    ImageError,
    LabelError,
    OptionError,
    OverwriteError,
    TrainingError,
    UnknownCharacterError,
)
from .read.charset import Charset
from .read.checkpoint import LoadedModel, load_model
from .read.ctc import DecodeOptions
from .read.model import CRNN, CRNNConfig
from .read.reader import CaptchaReader, Prediction

__all__ = [
    "CaptchaReader", "Prediction", "DecodeOptions", "CRNN", "CRNNConfig", "Charset", "load_model", "LoadedModel",
    "AllowedCharacterError", "CaptchaError", "CaptchaWarning", "CheckpointError", "ImageError", "LabelError", "OptionError", "OverwriteError", "TrainingError",
    "UnknownCharacterError", "TrainConfig", "fit", "PretrainConfig", "__version__",
]

#: Training's names, imported when first used: reading does not load the training code. (Pretraining's
#: call is ``crnn_captcha.training.pretrain``: ``crnn_captcha.pretrain`` is the command.)
_TRAINING = {"TrainConfig", "fit", "PretrainConfig"}


def __getattr__(name: str):
    if name in _TRAINING:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module 'crnn_captcha' has no attribute {name!r}")
