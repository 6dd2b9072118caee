import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: The real data lives beside the project: ../shared/data (see data/README.md).
SHARED_DATA = ROOT.parent / "shared" / "data"
CAPTCHA_V2 = SHARED_DATA / "captcha_v2"
GLYPHS_TAR = SHARED_DATA / "glyphs" / "glyphs.tar.gz"


def need(path: Path) -> Path:
    """Skip the test, saying why, where the real data is absent."""
    if not path.exists():
        pytest.skip(f"real data not found at {path} (it lives beside the project in ../shared/data)")
    return path


def stop_after_first_epoch(monkeypatch):
    """Make a training run stop as a Ctrl-C would, just after its first epoch's checkpoints are
    saved; returns the function that puts the real saving back (for the resumed run)."""
    from crnn_captcha.training import run_folder

    real_save = run_folder.Checkpointer.save

    def save_then_stop(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        if len(self.history) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_folder.Checkpointer, "save", save_then_stop)
    return lambda: monkeypatch.setattr(run_folder.Checkpointer, "save", real_save)
