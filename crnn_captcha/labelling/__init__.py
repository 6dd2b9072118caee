"""Labelling a folder of captchas with the model's help: :class:`~.book.LabelBook` (the answers, the
manifest, the order, the running figures) and the local page that drives it (:mod:`.web`)."""
