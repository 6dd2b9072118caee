"""Training CLI contracts on a few generated images (CPU, seconds each)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from crnn_captcha.checkpoint import load_checkpoint
from crnn_captcha.split import main as split_main
from crnn_captcha.train import TrainConfig, run
from crnn_captcha.train import main as train_main
from synth import make_folder

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--channels", "8", "16", "16", "16", "24", "--hidden", "32", "--lstm-layers", "1", "--no-progress"]


def tiny_config(splits, **changes) -> TrainConfig:
    """The TINY model's recipe on a split, as a config."""
    return TrainConfig(train=str(splits / "train.csv"), val=str(splits / "val.csv"), channels=(8, 16, 16, 16, 24),
                       hidden=32, lstm_layers=1, **changes)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    make_folder(base / "imgs", 48, seed=7)
    assert split_main(["--src", str(base / "imgs"), "--out", str(base / "splits")]) == 0
    return base / "splits"


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_train_writes_checkpoints_metrics_and_curves(splits, tmp_path):
    out = tmp_path / "run"
    assert train_main(["--splits", str(splits), "--out", str(out), "--epochs", "2", "--seed", "1", *TINY]) == 0
    for name in ("best.pt", "last.pt", "metrics.jsonl", "curves.png"):
        assert (out / name).exists(), name
    stored = TrainConfig.from_dict(load_checkpoint(out / "best.pt")["train_args"])
    assert stored.epochs == 2 and stored.seed == 1 and stored.train == str(splits / "train.csv")
    assert not {"out", "resume", "no_progress"} & set(load_checkpoint(out / "best.pt")["train_args"])
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["val_n"] == 6 for r in rows)
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 2 and "optimizer" in last and last["charset"]
    # refuses to overwrite a run without --resume
    assert train_main(["--splits", str(splits), "--out", str(out), "--epochs", "2", *TINY]) == 1


def test_cpu_runs_repeatable(splits, tmp_path):
    for name in ("a", "b"):
        assert run(tiny_config(splits, epochs=1, seed=3), tmp_path / name, progress=False) == 0
    a, b = (load_checkpoint(tmp_path / n / "last.pt")["state_dict"] for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_killed_run_resumes_from_last_epoch(splits, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "crnn_captcha.train", "--splits", str(splits), "--out", str(out),
           "--epochs", "200", "--patience", "0", *TINY]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "last.pt").exists():
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = load_checkpoint(out / "last.pt")["epoch"]
    assert 1 <= done < 200
    assert train_main(["--splits", str(splits), "--out", str(out), "--epochs", str(done + 1), "--resume",
                       "--patience", "0", *TINY]) == 0
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == list(range(1, done + 2))  # each epoch once, none lost but the cut one
    assert load_checkpoint(out / "last.pt")["epoch"] == done + 1


def test_nan_loss_stops_with_clear_message(splits, tmp_path, capsys, monkeypatch):
    from crnn_captcha.model import CRNN

    real_forward = CRNN.forward
    calls = {"train": 0}

    def forward(self, x):
        out = real_forward(self, x)
        if self.training:
            calls["train"] += 1
            if calls["train"] > 3:  # epoch 1 (2 batches of 16 from 36 images) is good, then NaN
                return out * float("nan")
        return out

    monkeypatch.setattr(CRNN, "forward", forward)
    out = tmp_path / "run"
    assert train_main(["--splits", str(splits), "--out", str(out), "--epochs", "5", *TINY]) == 1
    err = capsys.readouterr().err
    assert "loss became nan at epoch 2" in err and "last.pt" in err
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # the last good checkpoint is kept


@pytest.mark.slow
def test_ddp_two_cpu_processes(splits, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "crnn_captcha.train", "--splits", str(splits), "--out", str(out), "--epochs", "2", *TINY]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_jsonl(out / "metrics.jsonl")
    val_size = len((splits / "val.csv").read_text().strip().splitlines()) - 1
    assert [r["val_n"] for r in rows] == [val_size, val_size]  # every val sample exactly once
    ckpt = load_checkpoint(out / "best.pt")
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert res.stderr.count("epoch   1 ") == 1  # only rank 0 logs


def test_pretrained_backbone_is_loaded(tmp_path, splits):
    from crnn_captcha.pretrain import main as pretrain_main
    from synth import render

    glyphs = tmp_path / "glyphs"
    glyphs.mkdir()
    for i, ch in enumerate("2345678bcdefgmnpwxy" * 2):
        render(ch, size=(32, 52), seed=i).save(glyphs / f"{ch}_{i}.png")
    chans = ["--channels", "8", "16", "16", "16", "24"]
    assert pretrain_main(["--glyphs", str(glyphs), "--out", str(tmp_path / "g"), "--epochs", "1", *chans]) == 0
    backbone = load_checkpoint(tmp_path / "g" / "backbone.pt", kind="glyph")
    out = tmp_path / "run"
    config = tiny_config(splits, epochs=1, lr=1e-12, pretrained_backbone=str(tmp_path / "g" / "backbone.pt"))
    assert run(config, out, progress=False) == 0
    trained = load_checkpoint(out / "last.pt")["state_dict"]
    w = "backbone.features.0.0.weight"
    assert torch.allclose(trained[w], backbone["state_dict"][w], atol=1e-6)
    # a backbone of another width is refused with a message naming it
    assert train_main(["--splits", str(splits), "--out", str(tmp_path / "r2"), "--epochs", "1",
                       "--pretrained-backbone", str(tmp_path / "g" / "backbone.pt"), "--no-progress"]) == 1


def test_ablation_report_val_only_and_with_test(splits, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import ablation_report
    finally:
        sys.path.pop(0)
    runs = tmp_path / "runs"
    assert train_main(["--splits", str(splits), "--out", str(runs / "scratch_s0"), "--epochs", "1", *TINY]) == 0
    capsys.readouterr()
    # --no-test must not read the test split at all: point it at a file that does not exist
    assert ablation_report.main(["--runs", str(runs), "--recipes", "scratch", "--no-test",
                                 "--test", str(tmp_path / "absent.csv")]) == 0
    table = capsys.readouterr().out
    assert "| scratch_s0 |" in table and "best val accuracy" in table and "test accuracy" not in table
    out_json = tmp_path / "report.json"
    assert ablation_report.main(["--runs", str(runs), "--recipes", "scratch", "--test", str(splits / "test.csv"),
                                 "--json", str(out_json)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    (row,) = json.loads(out_json.read_text())
    assert row["run"] == "scratch_s0" and row["test_n"] == 6 and 0.0 <= row["test_accuracy"] <= 1.0
