"""Split a folder of labelled captchas into train/val/test manifests (75/12.5/12.5 by default).

    python scripts/split_data.py --src ../shared/data/captcha_v2 --out data/splits
"""
from crnn_captcha.split import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python scripts/split_data.py"))
