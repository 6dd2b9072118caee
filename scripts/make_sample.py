"""Write the sample captcha the package ships (crnn_captcha/samples/8xypd.png), which README's first
command reads: drawn by this project's own test generator (Pillow's built-in font, CC0), in the
captcha v2 alphabet and size, so the shipped reader reads it on any machine without outside data.

    python scripts/make_sample.py
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from synth import render  # noqa: E402

TEXT, SEED = "8xypd", 1

if __name__ == "__main__":
    out = ROOT / "crnn_captcha" / "samples" / f"{TEXT}.png"
    out.parent.mkdir(exist_ok=True)
    render(TEXT, seed=SEED).save(out, optimize=True)
    print(out)
