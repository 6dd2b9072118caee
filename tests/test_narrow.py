"""A trained model cut down to fewer conv channels (crnn_captcha.training.narrow, scripts/narrow_model.py)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crnn_captcha.read.charset import Charset
from crnn_captcha.read.checkpoint import atomic_save, load_model, make_checkpoint
from crnn_captcha.read.images import PreprocessConfig
from crnn_captcha.read.model import CRNN, CRNNConfig
from crnn_captcha.training.narrow import block_activations, choose_channels, conv_blocks, narrow, recalibrate

ROOT = Path(__file__).resolve().parent.parent
WIDE = (8, 12, 16, 16, 24)


def wide_model(seed: int = 0) -> CRNN:
    torch.manual_seed(seed)
    model = CRNN(CRNNConfig(num_classes=11, channels=WIDE, hidden=16, in_channels=3, rows=2))
    for m in model.modules():  # batch norms that differ from their defaults, as trained ones do
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    recalibrate(model, images())
    return model


def images(n: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, 32, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_narrowing_to_the_same_size_keeps_the_readings():
    model = wide_model()
    same = narrow(model, WIDE, images())
    x = images(4)
    assert torch.allclose(model(x), same(x), atol=1e-4)


def test_narrowed_model_has_the_asked_size_and_the_kept_channels_own_weights():
    model, small_size = wide_model(), (4, 6, 8, 8, 12)
    keep = choose_channels(model, small_size, images())
    small = narrow(model, small_size, images())
    assert small.config.channels == small_size
    assert small(images(2)).shape == model(images(2)).shape
    first, second = conv_blocks(model), conv_blocks(small)
    assert torch.equal(second[0][0].weight, first[0][0].weight[keep[0]])
    assert torch.equal(second[1][0].weight, first[1][0].weight[keep[1]][:, keep[0]])
    rows = model.config.feature_rows
    features = (keep[4][:, None] * rows + torch.arange(rows)).flatten()
    assert torch.equal(small.rnn.weight_ih_l0_reverse, model.rnn.weight_ih_l0_reverse[:, features])
    assert torch.equal(small.head.weight, model.head.weight)


def test_a_channel_that_never_fires_is_the_first_to_go():
    model = wide_model()
    norm = conv_blocks(model)[2][1]
    with torch.no_grad():  # channel 5 of the third block: zero after its ReLU on every image
        norm.weight[5], norm.bias[5] = 0.0, -1.0
    assert block_activations(model, images())[2][5] == 0
    kept = choose_channels(model, (8, 12, 15, 16, 24), images())[2]
    assert 5 not in kept.tolist() and len(kept) == 15


@pytest.mark.parametrize("channels", [(8, 12, 16, 16), (8, 12, 16, 16, 25), (0, 12, 16, 16, 24)])
def test_narrowing_refuses_impossible_sizes(channels):
    with pytest.raises(ValueError, match="channels"):
        narrow(wide_model(), channels, images())


def test_narrow_script_writes_a_loadable_smaller_checkpoint(tmp_path):
    charset = Charset("0123456789")
    model = wide_model()
    pre = PreprocessConfig(height=32, width=128, channels=3, resize="pad")
    atomic_save(make_checkpoint(model, charset, pre), tmp_path / "wide.pt")
    cmd = [sys.executable, str(ROOT / "scripts" / "narrow_model.py"), "--checkpoint", str(tmp_path / "wide.pt"),
           "--channels", "4", "6", "8", "8", "12", "--images", "16", "--out", str(tmp_path / "small.pt")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "-> [4, 6, 8, 8, 12]" in done.stdout
    loaded = load_model(tmp_path / "small.pt")
    assert loaded.model.config.channels == (4, 6, 8, 8, 12)
    assert loaded.checkpoint["train_args"]["narrowed_to"] == [4, 6, 8, 8, 12]
    bad = subprocess.run(cmd[:5] + ["99", "6", "8", "8", "12", "--images", "16", "--out", str(tmp_path / "x.pt")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --channels") and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.pt").exists()
