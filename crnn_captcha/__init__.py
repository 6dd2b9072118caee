"""crnn_captcha: read whole text CAPTCHAs with a CNN + BiLSTM + CTC model.

    from crnn_captcha import CaptchaReader
    CaptchaReader().read("226md.png")
"""
from ._version import __version__
from .charset import Charset
from .checkpoint import LoadedModel, load_model
from .ctc import DecodeOptions
from .errors import (
    AllowedCharacterError, CaptchaError, CaptchaWarning, CheckpointError, ImageError, LabelError, OptionError, OverwriteError, TrainingError,
    UnknownCharacterError,
)
from .model import CRNN, CRNNConfig
from .reader import CaptchaReader, Prediction

__all__ = [
    "CaptchaReader", "Prediction", "DecodeOptions", "CRNN", "CRNNConfig", "Charset", "load_model", "LoadedModel",
    "AllowedCharacterError", "CaptchaError", "CaptchaWarning", "CheckpointError", "ImageError", "LabelError", "OptionError", "OverwriteError", "TrainingError",
    "UnknownCharacterError", "__version__",
]
