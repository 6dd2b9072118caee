"""The shipped default model (installed as the package crnn_captcha.checkpoints)."""
