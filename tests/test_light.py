"""Reading without PyTorch: the shipped exports describe their models, so a plain install (numpy,
Pillow, ONNX Runtime) reads exactly as the PyTorch path does, and what needs training says so."""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CAPTCHA_V2, ROOT, SHARED_DATA
from crnn_captcha import CaptchaReader
from synth import make_folder

TESTS = Path(__file__).resolve().parent


def without_torch(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -c code`` or ``python -m ARGS`` where the training packages cannot be imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    prelude = "import notorch, runpy, sys; "
    if code is None:
        code = f"sys.argv = {[args[0], *args[1:]]!r}; runpy.run_module({args[0]!r}, run_name='__main__', alter_sys=True)"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=300, env=env)


def some_images(tmp_path: Path) -> list[str]:
    """Generated captchas, and the real ones beside the project where they are."""
    folder = tmp_path / "imgs"
    make_folder(folder, 8, seed=4)
    paths = sorted(str(p) for p in folder.iterdir())
    if CAPTCHA_V2.exists():
        paths += sorted(str(p) for p in CAPTCHA_V2.iterdir() if p.suffix in (".png", ".jpg"))[:200]
    for site in sorted((SHARED_DATA / "real").glob("*/all.csv")):
        with site.open() as fh:
            paths += [str(site.parent / row["path"]) for row in list(csv.DictReader(fh))[:50]]
    return paths


@pytest.mark.slow
def test_reading_without_torch_equals_the_pytorch_path(tmp_path):
    paths = some_images(tmp_path)
    listed = tmp_path / "paths.json"
    listed.write_text(json.dumps(paths))
    code = ("import json; from crnn_captcha import CaptchaReader; r = CaptchaReader(); "
            f"preds = r.predict_batch(json.load(open({str(listed)!r})), errors='mark'); "
            "assert 'torch' not in sys.modules and r.backend == 'onnx', sorted(sys.modules); "
            "print(json.dumps([[p.text, p.confidence, list(p.char_confidences)] for p in preds]))")
    light = without_torch(code=code)
    assert light.returncode == 0, light.stderr[-2000:]
    torch_path = CaptchaReader(device="cpu", backend="torch").predict_batch(paths, errors="mark")
    for (text, conf, chars), p in zip(json.loads(light.stdout), torch_path):
        assert text == p.text
        assert abs(conf - p.confidence) < 1e-5 and all(abs(a - b) < 1e-5 for a, b in zip(chars, p.char_confidences))


@pytest.mark.slow
def test_commands_without_torch_read_or_say_what_to_install(tmp_path):
    image = tmp_path / "imgs"
    make_folder(image, 1, seed=1)
    one = next(image.iterdir())
    read = without_torch("crnn_captcha.predict", str(one))
    # a generated image may read below the confidence that earns a hint; nothing else is said
    assert read.returncode == 0 and read.stdout.strip(), read.stderr[-2000:]
    assert not read.stderr or (read.stderr.startswith("hint: ") and read.stderr.count("\n") == 1), read.stderr
    for command in ("train", "pretrain", "export", "synth"):
        refused = without_torch(f"crnn_captcha.{command}", "--help")
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr[-2000:]
        assert 'pip install "crnn_captcha[train]"' in refused.stderr and "Traceback" not in refused.stderr
    listed = without_torch(code="from crnn_captcha.__main__ import main; raise SystemExit(main(['train', '--help']))")
    assert listed.returncode == 2 and "train needs torch" in listed.stderr


@pytest.mark.slow
def test_a_checkpoint_without_a_usable_export_says_what_to_do_without_torch(tmp_path):
    shipped = ROOT / "checkpoints" / "captcha_v2.pt"
    alone = tmp_path / "mine.pt"
    shutil.copyfile(shipped, alone)
    done = without_torch(code=f"from crnn_captcha import CaptchaReader; CaptchaReader({str(alone)!r})")
    assert "no ONNX export; run python -m crnn_captcha.export --checkpoint" in done.stderr
    assert 'without it, reading needs PyTorch (pip install "crnn_captcha[train]")' in done.stderr
    import onnx  # an export made before exports described their model: the same graph, no description

    proto = onnx.load(str(shipped.with_suffix(".onnx")))
    kept = [p for p in proto.metadata_props if p.key != "crnn_captcha.model"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(alone.with_suffix(".onnx")))
    old = without_torch("crnn_captcha.predict", str(ROOT / "README.md"), "--checkpoint", str(alone))
    assert old.returncode == 2 and old.stderr.count("\n") == 1, old.stderr
    assert "does not describe its model; export it again" in old.stderr
    assert CaptchaReader(alone, device="cpu").backend == "onnx"  # with PyTorch, the checkpoint describes it


@pytest.mark.slow
def test_without_torch_backend_torch_says_what_to_install():
    done = without_torch(code="from crnn_captcha import CaptchaReader; CaptchaReader(backend='torch')")
    assert "OptionError: backend 'torch' needs PyTorch (pip install \"crnn_captcha[train]\")" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_pytorch_that_does_not_load_leaves_reading_to_onnx_runtime(tmp_path):
    """find_spec finds torch, but importing it fails (a broken or half-installed build)."""
    broken = tmp_path / "torch"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise OSError('libcudart.so.12: cannot open shared object file')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    code = "from crnn_captcha import CaptchaReader; r = CaptchaReader(); print(r.backend, r.read(%r))" % str(
        ROOT / "crnn_captcha" / "samples" / "8xypd.png")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and done.stdout.split() == ["onnx", "8xypd"], done.stderr[-1500:]
