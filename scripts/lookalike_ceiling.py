"""How well can anything tell the cases of ImageCaptcha's look-alike characters apart? A probe, not a test.

    python scripts/lookalike_ceiling.py                      # 3000 train / 1000 test glyphs per character
    python scripts/lookalike_ceiling.py --train 500 --test 200 --epochs 2   # a quick look
    python scripts/lookalike_ceiling.py --train 480 --epochs 20 --squeeze   # narrowed as in a 6-char line

ImageCaptcha (the `captcha` package, our ic36 / ic62 development families) draws each character at a
font size picked from three, crops it to its ink and stretches that to the character's line box, so a
lowercase `x` and a capital `X` come out the same height. This script renders single characters
exactly as the generator draws them (its own `_draw_character` and paste mask, seeded, black on white,
centred on a 70-pixel-high canvas as in a 200x70 ic62 captcha) and trains a small CNN to name them
(3,000 glyphs a character by default, six times what 5,000 ic62 captchas hold). Its test accuracy per
character is roughly the best a reader can do on one clean, isolated glyph, so (mean over the
alphabet)^length bounds what a case-sensitive reader can score on whole captchas of uniform random
characters. Control groups whose cases differ in shape (a/A, b/B, e/E) show whether the probe is strong
enough to separate what can be separated. The generator also narrows a whole line that comes out
wider than 200 pixels, nearly every 6-character one; `--squeeze` narrows each glyph as its line would
be, which takes much of the difference between the cases away.

Prints per-character accuracy, the confusions, and the implied whole-captcha ceiling for ic62 (62
symbols, 6 characters). The generator's glyphs are measured here, never trained into a shipped model.
"""
from __future__ import annotations

import argparse
import random
import string
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_family import SeededSource, image_captcha, seeded_module  # noqa: E402

LOOKALIKES = "0Oo" "vV" "xX" "zZ" "uU" "cC" "sS" "wW" "kK" "pP"  # the characters the ceiling counts
CONTROLS = "aA" "bB" "eE"  # cases of different shapes: the probe should name them all
CANVAS = (64, 70)  # width, height: ic62 is 200x70
SYMBOLS = string.digits + string.ascii_uppercase + string.ascii_lowercase


def glyph(char: str, seed: int, squeeze: bool = False) -> np.ndarray:
    """One character as ImageCaptcha 200x70 draws it, centred on a white canvas, gray 0-1. With
    `squeeze`, narrowed as the generator narrows a 6-character line that comes out wider than 200
    pixels (the other five characters and the optional spaces drawn, and measured, as it would)."""
    import captcha.image

    generator = image_captcha(200, 70)
    canvas = Image.new("L", CANVAS, 255)
    source = SeededSource(seed)
    with seeded_module(captcha.image, source):
        draw = ImageDraw.Draw(canvas)
        drawn = generator._draw_character(char, draw, (255, 255, 255))
        if squeeze:
            line = [char] + [source.choice(SYMBOLS) for _ in range(5)]
            spaces = sum(source.random() > generator.word_space_probability for _ in line)
            width = drawn.width + sum(generator._draw_character(c, draw, (255, 255, 255)).width
                                      for c in line[1:] + [" "] * spaces)
            if width > 200:
                drawn = drawn.resize((max(1, round(drawn.width * 200 / width)), drawn.height))
    if drawn.width > CANVAS[0]:
        drawn = drawn.resize((CANVAS[0], drawn.height))
    mask = drawn.convert("L").point(generator.lookup_table)  # the generator pastes through this mask
    canvas.paste(0, ((CANVAS[0] - drawn.width) // 2, (CANVAS[1] - drawn.height) // 2), mask)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def glyphs(chars: str, count: int, offset: int, seed: int, squeeze: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = random.Random(f"{seed}|{offset}")
    images = [glyph(c, rng.getrandbits(64), squeeze) for c in chars for _ in range(count)]
    labels = [i for i in range(len(chars)) for _ in range(count)]
    return np.stack(images)[:, None], np.array(labels)


def probe(classes: int) -> nn.Module:
    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(block(1, 16), block(16, 32), block(32, 64), block(64, 128),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, classes))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=3000, help="glyphs per character to train on")
    parser.add_argument("--test", type=int, default=1000, help="glyphs per character to test on")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--squeeze", action="store_true",
                        help="narrow each glyph as the generator narrows a 6-character line wider than 200 px")
    args = parser.parse_args(argv)
    if min(args.train, args.test, args.epochs) < 1:
        parser.error("--train, --test and --epochs must be at least 1")

    torch.manual_seed(args.seed)
    chars = LOOKALIKES + CONTROLS
    start = time.time()
    x_train, y_train = glyphs(chars, args.train, 0, args.seed, args.squeeze)
    x_test, y_test = glyphs(chars, args.test, 1, args.seed, args.squeeze)
    print(f"rendered {len(x_train)} + {len(x_test)} glyphs of {chars} in {time.time() - start:.0f}s", flush=True)

    model = probe(len(chars))
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    steps = args.epochs * ((len(x_train) + 127) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps)
    x_train, y_train = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), 128):
            batch = order[i:i + 128]
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        print(f"epoch {epoch + 1}  loss {loss.item():.3f}  {time.time() - start:.0f}s", flush=True)

    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(torch.from_numpy(x_test[i:i + 512])).argmax(1)
                               for i in range(0, len(x_test), 512)]).numpy()
    accuracy = {}
    for i, c in enumerate(chars):
        mine = predicted[y_test == i]
        accuracy[c] = float((mine == i).mean())
        wrong = {chars[j]: int((mine == j).sum()) for j in set(mine.tolist()) if j != i}
        print(f"{c}  {accuracy[c]:.3f}  read as: {wrong or '-'}")
    per_char = sum(accuracy[c] if c in LOOKALIKES else 1.0 for c in SYMBOLS) / len(SYMBOLS)
    print(f"controls {CONTROLS}: mean {np.mean([accuracy[c] for c in CONTROLS]):.3f}")
    print(f"ic62 (62 symbols, 6 characters): mean character accuracy {per_char:.4f} "
          f"(controls and the other characters counted as 1), whole-captcha ceiling {per_char ** 6:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
