"""What reading a captcha needs, and nothing of training: the alphabet (:mod:`.charset`), loading
any input and the one preprocessing (:mod:`.images`), CTC loss and every decoder (:mod:`.ctc`), the
CRNN (:mod:`.model`), the checkpoint format (:mod:`.checkpoint`) and :class:`~.reader.CaptchaReader`."""
