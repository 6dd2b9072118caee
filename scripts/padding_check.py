"""How much a reader depends on the text's share of the image height, and how much of it the
renderer's text covers.

Reads 300 random images of each set (seed 0) as they are and padded by half their height, split
above and below, in each image's own border colour; a reader that reads far more of a set padded
was trained on text that leaves more room than that set's does. With ``--renders N``, also prints
the share of the canvas height the renderer's text spans over N captchas (seed 3).

    python scripts/padding_check.py general runs/mine/pretrained.pt --renders 1500
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SETS = {**{f: ROOT / "data" / "families" / f / "test.csv" for f in ("ic36", "ic62", "warped", "colour")},
        **{s: ROOT.parent / "shared" / "data" / "real" / s / "all.csv" for s in ("thsr_rail", "swust_univ", "lzu_digits")}}


def padded(im: Image.Image, share: float = 0.5) -> Image.Image:
    """``im`` with ``share`` of its height added, half above and half below, in its border colour."""
    im = im.convert("RGB")
    a = np.asarray(im)
    border = tuple(int(v) for v in np.median(np.concatenate([a[0], a[-1]]), axis=0))
    out = Image.new("RGB", (im.width, int(im.height * (1 + share))), border)
    out.paste(im, (0, (out.height - im.height) // 2))
    return out


def right(reader, image: Image.Image, label: str) -> bool:
    try:
        return reader.read(image).lower() == label.lower()
    except Exception:  # noqa: BLE001 - padded past the shapes the model reads: counted as a misread
        return False


def check_readers(models: list[str], n: int) -> None:
    from crnn_captcha import CaptchaReader
    from crnn_captcha.data.labels import load_samples

    readers = [CaptchaReader(m) for m in models]
    print("| set | n | " + " | ".join(f"{m}: as is / padded" for m in models) + " |")
    for name, manifest in SETS.items():
        if not manifest.exists():
            print(f"| {name} | skipped: {manifest} is missing |")
            continue
        samples = load_samples(manifest, length=None)
        random.Random(0).shuffle(samples)
        samples = samples[:n]
        hits = np.zeros((len(readers), 2))
        for s in samples:
            im = Image.open(s.path)
            im.load()
            pad = padded(im)
            for k, reader in enumerate(readers):
                hits[k] += (right(reader, im, s.label), right(reader, pad, s.label))
        cells = " | ".join(f"{100 * a / len(samples):.1f}% / {100 * b / len(samples):.1f}%" for a, b in hits)
        print(f"| {name} | {len(samples)} | {cells} |", flush=True)


def check_renderer(count: int) -> None:
    from crnn_captcha.synthetic import SynthRenderer

    renderer, spans = SynthRenderer(seed=3), []
    for i in range(count):
        _, img, layer, *_ = renderer._compose(i, None)
        rows = np.where(layer.alpha.max(axis=1) > 0.3)[0]
        spans.append((rows.max() - rows.min() + 1) / img.shape[0] if len(rows) else 0.0)
    spans = np.array(spans)
    print(f"renderer, {count} captchas: the text's ink spans a median {np.median(spans):.0%} of the height, "
          f"more than 80% of it in {np.mean(spans > 0.8):.1%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help="shipped model names or checkpoint paths")
    ap.add_argument("--n", type=int, default=300, help="images a set")
    ap.add_argument("--renders", type=int, default=0, help="also measure the renderer over this many captchas")
    args = ap.parse_args()
    if args.renders:
        check_renderer(args.renders)
    if args.models:
        check_readers(args.models, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
