"""Damaged and hand-edited checkpoints and exports: refused with one line naming the field, or read
exactly as the original."""
import os
import random
import shutil

import numpy as np
import pytest
import torch

from crnn_captcha import CaptchaReader, CaptchaWarning, CheckpointError, OptionError
from crnn_captcha.read.charset import Charset
from crnn_captcha.read.checkpoint import default_checkpoint, load_checkpoint, load_model, make_checkpoint
from crnn_captcha.read.images import PreprocessConfig
from crnn_captcha.read.model import CRNN, CRNNConfig
from crnn_captcha.predict import main as predict_main
from synth import make_folder

TINY = dict(channels=(8, 16, 16, 16, 24), hidden=32, lstm_layers=1)


@pytest.fixture()
def tiny_ckpt():
    cs = Charset("2345678bcdefgmnpwxy")
    return make_checkpoint(CRNN(CRNNConfig(num_classes=cs.num_classes, **TINY)), cs, PreprocessConfig())


def edited(ckpt, path, edit, resum: bool = False):
    """``ckpt`` changed by ``edit`` and saved; with ``resum`` its checksums are made anew, as a
    forger would (so what lies behind the checksum check is tested too)."""
    from crnn_captcha.read.checkpoint import checksums

    ckpt = {**ckpt, "state_dict": dict(ckpt["state_dict"]), "preprocess": dict(ckpt["preprocess"]),
            "model_config": dict(ckpt["model_config"])}
    edit(ckpt)
    if resum:
        try:
            ckpt["checksums"] = checksums(ckpt)
        except Exception:  # fields too broken to sum (a list, weights without data): they fail before the sums
            pass
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("field,edit", [
    ("format_version", lambda c: c.update(format_version="1")),
    ("format_version", lambda c: c.update(format_version=0)),
    ("format", lambda c: c.update(format_version=99)),
    ("state_dict", lambda c: c.update(state_dict=[1, 2])),
    ("state_dict", lambda c: c["state_dict"].update({"head.bias": c["state_dict"]["head.bias"] * float("nan")})),
    ("metrics", lambda c: c.update(metrics=[0.5])),
    ("preprocess", lambda c: c["preprocess"].update(height=0)),
    ("preprocess", lambda c: c["preprocess"].update(height=64)),
    ("preprocess", lambda c: c["preprocess"].update(mean="x")),
    ("preprocess", lambda c: c["preprocess"].update(std=0)),
    ("model_config", lambda c: c["model_config"].update(channels=[8, 16])),
    ("model_config", lambda c: c.update(model_config="crnn")),
    ("charset", lambda c: c.update(charset="aab")),
    ("charset", lambda c: c.update(charset=5)),
    ("checksum", lambda c: c["state_dict"].update({"head.bias": c["state_dict"]["head.bias"] + 1e-3})),
    # values that would build a broken or enormous model before anything else noticed
    ("model_config", lambda c: c["model_config"].update(dropout=2.0)),
    ("model_config", lambda c: c["model_config"].update(hidden=-1)),
    ("model_config", lambda c: c["model_config"].update(hidden="64")),
    ("model_config", lambda c: c["model_config"].update(hidden=10**7)),
    ("model_config", lambda c: c["model_config"].update(channels=[0, 16, 16, 16, 24])),
    ("model_config", lambda c: c["model_config"].update(channels=[-1, 16, 16, 16, 24])),
    ("model_config", lambda c: c["model_config"].update(lstm_layers=0)),
    ("model_config", lambda c: c["model_config"].update(hidden=4000)),
    ("charset", lambda c: c.update(charset=c["charset"][::-1])),  # a valid alphabet, in another order
    ("preprocess", lambda c: c["preprocess"].update(mean=0.4)),
    ("meta device", lambda c: c.update(state_dict={k: v.to("meta") for k, v in c["state_dict"].items()})),
])
def test_hand_edited_fields_are_named(tmp_path, tiny_ckpt, field, edit):
    """Each edit is refused naming the field: by its checks, or by the checksums, which cover the
    weights, alphabet, preprocessing and model description; and by the checks behind the checksums
    where the checksums are made anew."""
    for resum in (False, True):
        path = edited(tiny_ckpt, tmp_path / "edited.pt", edit, resum)
        try:
            load_model(path)
        except CheckpointError as e:
            msg = str(e)
            assert "edited.pt" in msg and "\n" not in msg, msg
            assert field in msg or (resum and "weights do not fit the model config" in msg), msg
        else:
            # only a valid change with matching sums loads: new weights, another alphabet or normalisation
            assert resum and field in ("charset", "preprocess", "checksum"), field


def test_a_checkpoint_without_checksums_loads_only_when_asked(tmp_path, tiny_ckpt):
    from crnn_captcha.read.checkpoint import load_checkpoint

    bare = {k: v for k, v in tiny_ckpt.items() if k not in ("checksums", "weights_sha256")}
    torch.save(bare, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="no checksum is stored with it"):
        load_model(tmp_path / "bare.pt")
    assert load_checkpoint(tmp_path / "bare.pt", unchecked=True)["charset"] == tiny_ckpt["charset"]
    flipped = {("weights_sha25w" if k == "weights_sha256" else "checksumz" if k == "checksums" else k): v
               for k, v in tiny_ckpt.items()}  # one bit flipped in each key's name
    torch.save(flipped, tmp_path / "flipped.pt")
    with pytest.raises(CheckpointError, match="no checksum is stored with it"):
        load_model(tmp_path / "flipped.pt")


@pytest.mark.slow
def test_bit_flips_are_refused_or_harmless(tmp_path):
    original = default_checkpoint().read_bytes()
    x = torch.randn(4, 1, 32, 128)
    with torch.no_grad():
        expected = load_model().model(x)
    rng = random.Random(0)
    refused = 0
    for i in range(16):
        data = bytearray(original)
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flip{i}.pt"
        path.write_bytes(bytes(data))
        try:
            loaded = load_model(path)
        except CheckpointError as e:
            assert "\n" not in str(e)
            refused += 1
            continue
        with torch.no_grad():  # a flip in bytes the model does not use must change nothing
            assert torch.equal(loaded.model(x), expected), f"flip at byte {pos} changed the output"
    assert refused >= 12, refused  # nearly every byte of the file is weights


def test_file_with_code_is_refused_saying_why(tmp_path):
    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "x": RunsCode()}, path)
    with pytest.raises(CheckpointError, match="run code") as e:
        load_checkpoint(path)
    assert "GLOBAL" in str(e.value) and "system" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("damage", ["corrupt", "empty", "directory"])
def test_bad_onnx_beside_good_checkpoint_falls_back_to_torch(tmp_path, damage):
    ckpt = tmp_path / "m.pt"
    shutil.copy(default_checkpoint(), ckpt)
    onnx = tmp_path / "m.onnx"
    if damage == "corrupt":
        onnx.write_bytes(default_checkpoint().with_suffix(".onnx").read_bytes()[:5000])
    elif damage == "empty":
        onnx.write_bytes(b"")
    else:
        onnx.mkdir()
    with pytest.warns(CaptchaWarning, match="m.onnx"):
        reader = CaptchaReader(ckpt, device="cpu")
    assert reader.backend == "torch"
    with pytest.raises(CheckpointError, match="m.onnx"):
        CaptchaReader(ckpt, device="cpu", backend="onnx")


def test_forged_export_hash_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    ckpt = tmp_path / "m.pt"
    shutil.copy(default_checkpoint(), ckpt)
    proto = onnx.load(str(default_checkpoint().with_suffix(".onnx")))
    for prop in proto.metadata_props:
        prop.value = "\x00not-a-hash\n"
    onnx.save(proto, str(tmp_path / "m.onnx"))
    with pytest.raises(CheckpointError, match="another checkpoint"):
        CaptchaReader(ckpt, device="cpu", backend="onnx")


def test_predict_backend_option_and_length_bounds(tmp_path, capsys):
    make_folder(tmp_path / "imgs", 2, seed=3)
    img = str(sorted((tmp_path / "imgs").iterdir())[0])
    assert predict_main([img, "--backend", "torch"]) == 0
    text = capsys.readouterr().out.strip()
    assert predict_main([img, "--backend", "onnx"]) == 0 and capsys.readouterr().out.strip() == text
    for bad in (["--length", "-3"], ["--length", "0"], ["--beam-width", "-2"], ["--batch-size", "0"]):
        with pytest.raises(SystemExit) as e:
            predict_main([img, *bad])
        assert e.value.code == 2
    assert predict_main([img, "--length", "40"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: length 40") and "32 frames" in err[-1]
    with pytest.raises(OptionError):
        CaptchaReader(device="cpu").read(img, length=33)


def test_shipped_checkpoint_carries_a_checksum():
    ckpt = load_checkpoint(default_checkpoint())
    assert len(ckpt["weights_sha256"]) == 64
    assert np.isfinite(ckpt["metrics"]["val_accuracy"])


def test_ctrl_c_during_a_checkpoint_write_is_raised_once_the_file_is_whole(tmp_path):
    """A Ctrl-C that lands inside torch.save must not cut the file off: it is held until the
    checkpoint is in place, then raised as KeyboardInterrupt."""
    import os
    import signal

    from crnn_captcha.read.checkpoint import atomic_write

    path = tmp_path / "last.pt"

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"first half ")
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C mid-write
            f.write(b"second half")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert path.read_bytes() == b"first half second half"
    assert not list(tmp_path.glob("*.tmp"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was


def test_a_config_larger_than_its_weights_is_refused_before_the_model_is_built(tmp_path, tiny_ckpt, monkeypatch):
    """hidden=4000 beside weights of hidden 32 would build a model of about 1 GB before the weights
    were compared: the shapes are compared first."""
    from crnn_captcha.read import checkpoint

    def never(config):
        raise AssertionError(f"built a model of hidden {config.hidden}")

    monkeypatch.setattr(checkpoint, "CRNN", never)
    path = edited(tiny_ckpt, tmp_path / "big.pt", lambda c: c["model_config"].update(hidden=4000, lstm_layers=3),
                  resum=True)
    with pytest.raises(CheckpointError, match="weights do not fit the model config"):
        checkpoint.build_crnn(checkpoint.load_checkpoint(path), path)


def test_an_export_with_damaged_weights_or_another_models_graph_is_not_used(tmp_path, tiny_ckpt):
    """Bit flips in an export's weights change what it reads, not its hash: the outputs it recorded
    when it was made are compared when it is opened. A graph whose input is not the one the
    checkpoint describes is refused by its shape."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import numpy_helper

    from crnn_captcha.read.onnx_model import ABOUT_KEY, SHA_KEY, describe_model
    from crnn_captcha.read.shipped import file_sha256

    ckpt = tmp_path / "m.pt"
    shutil.copy(default_checkpoint(), ckpt)
    proto = onnx.load(str(default_checkpoint().with_suffix(".onnx")))
    weights = max(proto.graph.initializer, key=lambda i: int(np.prod(i.dims)))
    values = numpy_helper.to_array(weights).copy()
    bits = values.reshape(-1).view(np.uint32)
    for k in (5, 500, 1500):
        bits[k] ^= np.uint32(1 << 30)
    weights.CopyFrom(numpy_helper.from_array(values, weights.name))
    onnx.save(proto, str(ckpt.with_suffix(".onnx")))
    with pytest.warns(CaptchaWarning, match="its weights are damaged"):
        assert CaptchaReader(ckpt, device="cpu").backend == "torch"
    with pytest.raises(CheckpointError, match="m.onnx: its weights are damaged"):
        CaptchaReader(ckpt, device="cpu", backend="onnx")
    # the shipped gray model's graph, its records rewritten to claim a colour checkpoint's
    colour = {**tiny_ckpt, "preprocess": {**tiny_ckpt["preprocess"], "channels": 3},
              "model_config": {**tiny_ckpt["model_config"], "in_channels": 3}}
    forged = tmp_path / "c.pt"
    torch.save(colour, forged)
    proto = onnx.load(str(default_checkpoint().with_suffix(".onnx")))
    meta = {p.key: p.value for p in proto.metadata_props}
    meta.update({SHA_KEY: file_sha256(forged), ABOUT_KEY: describe_model(colour, 32)})
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(forged.with_suffix(".onnx")))
    with pytest.raises(CheckpointError, match=r"c.onnx: its model takes input \[1, 32, 128\], not the \[3, 32, 128\]"):
        CaptchaReader(forged, device="cpu", backend="onnx")


def test_a_full_disk_says_so_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """torch.save reports a failed write as a RuntimeError from its zip writer: on a full disk that
    is 'no space left', the previous file stays whole, and the error names the file asked for."""
    import errno

    from crnn_captcha.read import checkpoint

    path = tmp_path / "last.pt"
    path.write_bytes(b"the previous epoch")

    def full(obj, f):
        f.write(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/3: file write failed")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(OSError) as e:
        checkpoint.atomic_save({"x": 1}, path)
    assert e.value.errno == errno.ENOSPC and "no space left to write last.pt" in str(e.value)
    assert path.read_bytes() == b"the previous epoch" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    from crnn_captcha.files import atomic_write

    def failing(tmp):
        raise OSError(errno.EIO, "Input/output error", tmp)

    with pytest.raises(OSError) as e:
        atomic_write(tmp_path / "model.onnx", failing)
    assert e.value.filename == str(tmp_path / "model.onnx")  # not the temporary file beside it


def test_an_export_whose_description_was_edited_is_not_used(tmp_path):
    """The export's own description (alphabet, preprocessing) carries a checksum: another alphabet
    written into it would read 8xypd as something else, silently."""
    onnx = pytest.importorskip("onnx")
    import json

    from crnn_captcha.read.onnx_model import ABOUT_KEY

    ckpt = tmp_path / "m.pt"
    shutil.copy(default_checkpoint(), ckpt)
    proto = onnx.load(str(default_checkpoint().with_suffix(".onnx")))
    for prop in proto.metadata_props:
        if prop.key == ABOUT_KEY:
            about = json.loads(prop.value)
            about["charset"] = about["charset"][1:] + about["charset"][0]  # rotated: every character shifts
            prop.value = json.dumps(about)
    onnx.save(proto, str(ckpt.with_suffix(".onnx")))
    with pytest.raises(CheckpointError, match="description of the model .* does not match the checksum"):
        CaptchaReader(ckpt, device="cpu", backend="onnx")
    with pytest.warns(CaptchaWarning, match="does not match the checksum"):
        assert CaptchaReader(ckpt, device="cpu").backend == "torch"
