"""crnn_captcha: read whole text CAPTCHAs with a CNN + BiLSTM + CTC model."""
__version__ = "0.1.0"
