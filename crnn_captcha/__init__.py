"""crnn_captcha: read whole text CAPTCHAs with a CNN + BiLSTM + CTC model.

    from crnn_captcha import CaptchaReader
    CaptchaReader().read("226md.png")
"""
__version__ = "0.1.0"

from .charset import Charset  # noqa: E402
from .model import CRNN, CRNNConfig  # noqa: E402
from .reader import CaptchaReader, Prediction  # noqa: E402

__all__ = ["CaptchaReader", "Prediction", "CRNN", "CRNNConfig", "Charset", "__version__"]
