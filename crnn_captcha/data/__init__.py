"""Labelled captchas: labels from file names and manifests (:mod:`.labels`), training datasets
(:mod:`.datasets`), augmentation (:mod:`.augment`), where characters sit in an image
(:mod:`.positions`), glyph sets (:mod:`.glyphs`), splits (:mod:`.split`) and scoring texts against
labels (:mod:`.scoring`)."""
