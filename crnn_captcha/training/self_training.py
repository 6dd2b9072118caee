"""Learning from unlabelled captchas too: self-training on the model's confident readings.

    fit_with_unlabelled(config, "runs/mine", "downloads/")      # train --unlabelled downloads/

Two runs. The teacher (``out/teacher``) trains on the labelled images alone. It then reads the
unlabelled images, and its readings that are confident enough become labels (``out/pseudo.csv``).
The student (``out`` itself) trains on the labelled images and those readings together, starting
from the teacher. How confident is enough is measured on the validation set: the lowest confidence
above which the teacher read at least :data:`TARGET_PRECISION` of the validation images right
(``pseudo_threshold`` sets it instead); where there is none, no reading is used and the student
learns from the labels alone. A ``resume`` goes on with the run that was under way.

``teacher`` (``train --teacher``) names a model that has already learnt these captchas, such as the
labelling page's last retraining: it reads the unlabelled images, and no first run is trained.
Images of the validation set are never given pseudo-labels, so a folder that holds them can be given.
"""
from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from ..data.labels import IMAGE_SUFFIXES, Sample, is_hidden, load_samples, write_manifest
from ..errors import OptionError
from ..read.reader import CaptchaReader
from .loop import fit
from .recipe import TrainConfig
from .runtime import log

#: The share of its confident validation readings the teacher must get right.
TARGET_PRECISION = 0.98
#: The least number of validation images above a threshold for it to count as measured. Where no
#: threshold is measured, no reading is used: a teacher whose sure readings are not checked right
#: can be sure and wrong, and its wrong readings, learnt, make the next model surer of them.
MIN_ABOVE = 20
#: The bound is never lower: a reading its model thinks more likely wrong than right is no label.
MIN_THRESHOLD = 0.5


def unlabelled_images(src: str | Path) -> list[Path]:
    """The images of a folder (every image file directly in it), or the paths of a manifest."""
    src = Path(src)
    if src.is_dir():
        return sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not is_hidden(p))
    if src.is_file():
        return [s.path for s in load_samples(src, length=None)]
    raise OptionError(f"--unlabelled {src}: no such folder or manifest")


def confidence_bound(scored: Iterable[tuple[float, bool]]) -> float | None:
    """The lowest confidence above which :data:`TARGET_PRECISION` of the readings (``(confidence,
    right)`` pairs; :data:`MIN_ABOVE` of them at least) are right, and not under :data:`MIN_THRESHOLD`;
    None where no confidence has that many readings that right above it."""
    best, right = None, 0
    for k, (confidence, ok) in enumerate(sorted(scored, reverse=True), 1):
        right += ok
        if k >= MIN_ABOVE and right / k >= TARGET_PRECISION:
            best = confidence
    return None if best is None else max(best, MIN_THRESHOLD)


def measured_threshold(reader: CaptchaReader, val: list[Sample]) -> tuple[float | None, str]:
    """The teacher's :func:`confidence_bound` on ``val`` (None where there is none), with why."""
    read = reader.predict_batch([s.path for s in val], errors="mark")
    pairs = [(p.confidence, p.text == s.label) for p, s in zip(read, val) if p.ok]
    best = confidence_bound(pairs)
    if best is None:
        if len(pairs) < MIN_ABOVE:
            return None, (f"the validation set has {len(pairs)} readable images, fewer than the {MIN_ABOVE} a bound "
                          f"is measured on")
        return None, (f"at no confidence did the teacher read {TARGET_PRECISION:.0%} of at least {MIN_ABOVE} validation "
                      f"images right (it read {sum(ok for _, ok in pairs)} of {len(pairs)} right)")
    above = [ok for c, ok in pairs if c >= best]
    return best, (f"above it the teacher read {sum(above)} of the {len(above)} validation images it was that sure of "
                  f"right ({sum(above) / len(above):.1%})")


def label_lengths(labelled: list[Sample]) -> range:
    """The lengths a reading may have to become a label: from the shortest label to the longest."""
    found = [len(s.label) for s in labelled]
    return range(min(found), max(found) + 1)


def not_known(images: list[Path], known: list[Sample]) -> list[Path]:
    """The images that are none of ``known``'s."""
    paths = {s.path.resolve() for s in known}
    return [p for p in images if p.resolve() not in paths]


def pseudo_labels(reader: CaptchaReader, images: list[Path], labelled: list[Sample], threshold: float,
                  val: list[Sample] = ()) -> tuple[list[Sample], int]:
    """(the confident readings of ``images`` neither labelled nor in ``val``, as samples; how many were read)."""
    todo = not_known(images, [*labelled, *val])
    lengths = label_lengths(labelled)
    read = reader.predict_batch(todo, errors="mark")
    kept = [Sample(path, p.text) for path, p in zip(todo, read)
            if p.ok and p.confidence >= threshold and len(p.text) in lengths]
    return kept, len(todo)


def at_most(kept: list[Sample], most: int | None, seed: int = 0) -> list[Sample]:
    """``kept``, or a seeded random ``most`` of them where there are more (in their order): a cap on
    the training time, which grows with the images a run trains on."""
    if most is None or len(kept) <= most:
        return kept
    chosen = set(random.Random(seed).sample(range(len(kept)), most))
    return [s for k, s in enumerate(kept) if k in chosen]


def fit_with_unlabelled(config: TrainConfig, out: str | Path, unlabelled: str | Path,
                        pseudo_threshold: float | None = None, *, teacher: str | Path | None = None,
                        max_pseudo: int | None = None, resume: bool = False, **run: Any) -> int:
    """Self-training (see the module notes); ``max_pseudo`` caps the readings used (a seeded random
    choice among the confident ones); ``run``: :func:`fit`'s device, workers, threads and progress."""
    out = Path(out)
    record = out / "self_training.json"
    images = unlabelled_images(unlabelled)
    if not images:
        raise OptionError(f"--unlabelled {unlabelled}: no images in it")
    if resume and (out / "last.pt").exists():  # the student was under way
        return fit(None, out, resume=True, **run)
    if teacher is None:
        teacher = out / "teacher" / "best.pt"
        under_way = resume and (teacher.parent / "last.pt").exists()
        code = fit(None if under_way else config, teacher.parent, resume=under_way, **run)
        if code:
            return code
    reader = CaptchaReader(teacher, device=run.get("device", "auto"))  # a bad --teacher is named here
    opts = {"length": None, "skip_invalid": config.skip_invalid, "label_from": config.label_from,
            "label_regex": config.label_regex}
    labelled, val = load_samples(config.train, **opts), load_samples(config.val, **opts)
    why = "given"
    if pseudo_threshold is None:
        pseudo_threshold, why = measured_threshold(reader, val)
    if pseudo_threshold is None:
        kept = confident = []
        seen = len(not_known(images, [*labelled, *val]))
        log(f"self-training: no reading of the unlabelled images is used, as no bound was measured ({why}); the final "
            f"model learns from the {len(labelled):,} labelled images (--pseudo-threshold sets a bound)")
    else:
        confident, seen = pseudo_labels(reader, images, labelled, pseudo_threshold, val)
        kept = at_most(confident, max_pseudo, config.seed)
        joining = f"{len(kept):,} of them, chosen at random (--max-pseudo)," if len(kept) < len(confident) else "they"
        log(f"self-training: the teacher read {len(confident):,} of {seen:,} unlabelled images with confidence >= "
            f"{pseudo_threshold:.3f} ({why}); {joining} join the {len(labelled):,} labelled images")
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out / "pseudo.csv", kept)
    write_manifest(out / "student_train.csv", labelled + kept)
    record.write_text(json.dumps({"unlabelled": str(unlabelled), "images": seen, "pseudo_labels": len(kept),
                                  "confident": len(confident), "max_pseudo": max_pseudo,
                                  "threshold": pseudo_threshold, "threshold_why": why, "labelled": len(labelled),
                                  "teacher": str(teacher)}, indent=2) + "\n")
    student = replace(config, train=str(out / "student_train.csv"), init=str(teacher))
    return fit(student, out, **run)
