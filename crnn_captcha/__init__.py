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
from .read.ctc import DecodeOptions
from .read.device import installed as _installed
from .read.reader import CaptchaReader, Prediction

__all__ = [
    "CaptchaReader", "Prediction", "DecodeOptions", "Charset",
    "AllowedCharacterError", "CaptchaError", "CaptchaWarning", "CheckpointError", "ImageError", "LabelError", "OptionError", "OverwriteError", "TrainingError",
    "UnknownCharacterError", "__version__",
]

#: Names whose modules need PyTorch, imported when first used: reading through ONNX Runtime needs
#: none of them. (Pretraining's call is ``crnn_captcha.training.pretrain``: ``crnn_captcha.pretrain``
#: is the command.)
_WITH_TORCH = {"CRNN": "read.model", "CRNNConfig": "read.model", "LoadedModel": "read.checkpoint",
               "load_model": "read.checkpoint", "TrainConfig": "training", "fit": "training",
               "PretrainConfig": "training"}
if _installed("torch"):  # so ``from crnn_captcha import *`` works without PyTorch too
    __all__ += list(_WITH_TORCH)


def __getattr__(name: str):
    if name in _WITH_TORCH:
        import importlib

        try:
            module = importlib.import_module(f".{_WITH_TORCH[name]}", __name__)
        except ModuleNotFoundError as e:
            raise ImportError(f"crnn_captcha.{name} needs {e.name}: pip install \"crnn_captcha[train]\" (reading "
                              "needs none of it)", name=e.name) from None
        return getattr(module, name)
    raise AttributeError(f"module 'crnn_captcha' has no attribute {name!r}")
