"""Imported first in a child process, it makes the training packages look uninstalled (as after a plain
``pip install crnn_captcha``), so tests can check what reading does without them."""
import sys

BLOCKED = ("torch", "torchvision", "albumentations", "onnx")


class _Blocker:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocker)
