import pytest
import torch
from torch import nn

from crnn_captcha.read.charset import Charset
from crnn_captcha.read.ctc import ctc_loss, greedy_texts
from crnn_captcha.errors import CheckpointError
from crnn_captcha.read.checkpoint import atomic_save, build_crnn, load_checkpoint, make_checkpoint
from crnn_captcha.data.datasets import CaptchaDataset, collate_ctc
from crnn_captcha.data.labels import scan_folder
from crnn_captcha.read.images import PreprocessConfig
from crnn_captcha.read.model import CRNN, CRNNConfig, GlyphClassifier
from synth import make_folder

TINY = dict(channels=(8, 16, 16, 16, 24), hidden=32, lstm_layers=1, dropout=0.0)


def test_shapes_and_frames():
    cfg = CRNNConfig(num_classes=20)
    model = CRNN(cfg)
    out = model(torch.randn(3, 1, cfg.height, cfg.width))
    assert out.shape == (3, cfg.frames, 20)
    assert cfg.frames >= 2 * cfg.max_label_length - 1
    g = GlyphClassifier(19, cfg.channels)
    assert g(torch.randn(2, 1, 32, 20)).shape == (2, 19)


def test_too_few_frames_for_label_length_refused():
    with pytest.raises(ValueError, match="2L-1"):
        CRNNConfig(num_classes=20, width=32, max_label_length=5)  # 8 frames < 9


def test_gradients_finite():
    cfg = CRNNConfig(num_classes=6, **TINY)
    model = CRNN(cfg)
    x = torch.randn(4, 1, cfg.height, cfg.width)
    targets = torch.randint(1, 6, (20,))
    loss = ctc_loss(model(x), targets, torch.full((4,), 5))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.slow
def test_tiny_run_overfits_a_handful(tmp_path):
    labels = make_folder(tmp_path, 4, seed=3, alphabet="2bmx")
    cs = Charset.from_labels(labels)
    pre = PreprocessConfig()
    ds = CaptchaDataset(scan_folder(tmp_path), cs, pre)
    images, targets, lengths, truths = collate_ctc([ds[i] for i in range(len(ds))])
    torch.manual_seed(0)
    model = CRNN(CRNNConfig(num_classes=cs.num_classes, **TINY))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    read = []
    for step in range(1500):
        model.train()
        loss = ctc_loss(model(images), targets, lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 49:
            model.eval()
            with torch.no_grad():
                read = greedy_texts(model(images).argmax(2).numpy(), cs)
            if read == truths:
                break
    assert read == truths, f"after {step + 1} steps read {read}, expected {truths}"


def test_save_load_identical_logits(tmp_path):
    cs = Charset("abc")
    model = CRNN(CRNNConfig(num_classes=cs.num_classes, **TINY)).eval()
    path = tmp_path / "m.pt"
    atomic_save(make_checkpoint(model, cs, PreprocessConfig(), {"val_accuracy": 0.5}), path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["charset"] == "abc" and raw["format_version"] == 1
    loaded, cs2, pre2 = build_crnn(load_checkpoint(path), path)
    x = torch.randn(2, 1, 32, 128)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert cs2 == cs and pre2 == PreprocessConfig()


def test_mismatched_charset_refused(tmp_path):
    cs = Charset("abc")
    model = CRNN(CRNNConfig(num_classes=cs.num_classes, **TINY))
    ckpt = make_checkpoint(model, cs, PreprocessConfig())
    ckpt["charset"] = "abcd"  # 5 classes for a 4-output head
    from crnn_captcha.read.checkpoint import checksums

    ckpt["checksums"] = checksums(ckpt)  # as a forger would: the check behind the checksums still holds
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="bad.pt.*4 outputs"):
        build_crnn(load_checkpoint(path), path)


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"garbage" * 10, "not a PyTorch checkpoint")])
def test_bad_checkpoint_files(tmp_path, content, match):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as e:
        load_checkpoint(path)
    assert "x.pt" in str(e.value) and "\n" not in str(e.value)


def test_truncated_checkpoint(tmp_path):
    cs = Charset("abc")
    path = tmp_path / "full.pt"
    atomic_save(make_checkpoint(CRNN(CRNNConfig(num_classes=cs.num_classes, **TINY)), cs, PreprocessConfig()), path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="cut.pt: not a readable checkpoint") as e:
        load_checkpoint(cut)
    assert "\n" not in str(e.value)


def test_checkpoint_of_other_things_refused(tmp_path):
    path = tmp_path / "y.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a crnn_captcha checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")


def test_fused_batchnorm_same_logits():
    model = CRNN(CRNNConfig(num_classes=7, **TINY))
    model.train()
    model(torch.randn(8, 1, 32, 128))  # move the BN statistics away from their initial values
    model.eval()
    x = torch.randn(3, 1, 32, 128)
    with torch.no_grad():
        before = model(x)
        after = model.fuse_batchnorm()(x)
    assert torch.allclose(before, after, atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
