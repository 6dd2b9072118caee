"""What reading a captcha needs, and nothing of training: the alphabet (:mod:`.charset`), loading
any input and the one preprocessing (:mod:`.images`; in-memory pixels of every kind,
:mod:`.pixels`), an animated image's frames (:mod:`.frames`), CTC loss and every decoder (:mod:`.ctc`), the
CRNN (:mod:`.model`), the checkpoint format (:mod:`.checkpoint`), the shipped checkpoints
(:mod:`.shipped`), ONNX exports (:mod:`.onnx_model`), devices (:mod:`.device`) and
:class:`~.reader.CaptchaReader`.

Reading through an ONNX export needs numpy, Pillow and ONNX Runtime alone: :mod:`.model`,
:mod:`.checkpoint` and the loss in :mod:`.ctc` load PyTorch, and only they do."""
