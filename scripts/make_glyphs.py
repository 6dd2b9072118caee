"""Cut a leak-free 32x52 glyph set (Kaggle 118K format) from the TRAIN split's captchas.

    python scripts/make_glyphs.py --split data/splits/train.csv --out data/glyphs/train
"""
from crnn_captcha.glyphs import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python scripts/make_glyphs.py"))
