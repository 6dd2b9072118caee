"""scripts/padding_check.py: images padded in their own border colour, and the renderer's text span."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "padding_check.py"


def _script():
    spec = importlib.util.spec_from_file_location("padding_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_padding_adds_half_the_height_in_the_border_colour_and_keeps_the_image():
    a = np.full((40, 120, 3), (200, 220, 240), np.uint8)
    a[10:30, 20:100] = (10, 10, 10)  # the text
    out = np.asarray(_script().padded(Image.fromarray(a)))
    assert out.shape == (60, 120, 3)
    assert (out[:10] == (200, 220, 240)).all() and (out[-10:] == (200, 220, 240)).all()
    assert np.array_equal(out[10:50], a)


def test_the_renderer_check_prints_the_span():
    out = subprocess.run([sys.executable, str(SCRIPT), "--renders", "20"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "the text's ink spans a median" in out.stdout
