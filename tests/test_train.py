"""Training CLI contracts on a few generated images (CPU, seconds each)."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from crnn_captcha.read.checkpoint import load_checkpoint
from crnn_captcha.split import main as split_main
from crnn_captcha.training import TrainConfig, fit
from crnn_captcha.train import main as train_main
from conftest import stop_after_first_epoch
from synth import make_folder

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--channels", "8", "16", "16", "16", "24", "--hidden", "32", "--lstm-layers", "1", "--init", "scratch",
        "--no-progress"]


def tiny_config(splits, **changes) -> TrainConfig:
    """The TINY model's recipe on a split, as a config."""
    return TrainConfig(**{"train": str(splits / "train.csv"), "val": str(splits / "val.csv"), "init": "scratch",
                          "channels": (8, 16, 16, 16, 24), "hidden": 32, "lstm_layers": 1, **changes})


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
        assert fit(tiny_config(splits, epochs=1, seed=3), tmp_path / name, progress=False) == 0
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
    from crnn_captcha.read.model import CRNN

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
    # the batch named: the count above is of batches of 16, and a GPU's default batch is 64
    assert train_main(["--splits", str(splits), "--out", str(out), "--epochs", "5", "--batch-size", "16", *TINY]) == 1
    err = capsys.readouterr().err
    # the CPU reads every step's loss ("at epoch 2, step 2"), a GPU every 50th and the epoch's sum
    # ("during epoch 2"); either way the line names the checkpoint kept
    assert re.search(r"loss became nan (at|during) epoch 2\b.*the last good checkpoint is .*last\.pt", err)
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # the last good checkpoint is kept


@pytest.mark.slow
def test_ddp_two_cpu_processes(splits, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "crnn_captcha.train", "--splits", str(splits), "--out", str(out), "--epochs", "2", "--device", "cpu",
           *TINY]
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
    config = tiny_config(splits, epochs=1, lr=1e-12, init=str(tmp_path / "g" / "backbone.pt"))
    assert fit(config, out, progress=False) == 0
    trained = load_checkpoint(out / "last.pt")["state_dict"]
    w = "backbone.features.0.0.weight"
    assert torch.allclose(trained[w], backbone["state_dict"][w], atol=1e-6)
    # a backbone of another width is refused with a message naming it
    assert train_main(["--splits", str(splits), "--out", str(tmp_path / "r2"), "--epochs", "1", "--channels", "16", "32",
                       "64", "64", "96", "--pretrained-backbone", str(tmp_path / "g" / "backbone.pt"), "--no-progress"]) == 2


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


# ----- resuming, stopping, careless command lines ------------------------------------------------
def test_resume_keeps_saved_settings_and_names_conflicts(splits, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--splits", str(splits), "--out", str(out), "--epochs", "2", "--patience", "0", *TINY]) == 0
    capsys.readouterr()
    # a finished run says so and does nothing
    assert train_main(["--out", str(out), "--resume", "--no-progress"]) == 0
    assert "finished" in capsys.readouterr().err
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    # a conflicting setting is an error naming both values; nothing is written
    assert train_main(["--out", str(out), "--resume", "--hidden", "128", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "hidden 128" in err and "the run has 32" in err and len(err.splitlines()) == 1
    # --epochs may grow a run; the other settings come from the checkpoint
    assert train_main(["--out", str(out), "--resume", "--epochs", "3", "--no-progress"]) == 0
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 3 and TrainConfig.from_dict(last["train_args"]).hidden == 32


def test_resume_is_exact_on_the_cpu(splits, tmp_path, monkeypatch):
    config = tiny_config(splits, epochs=3, patience=0, seed=5, splice_prob=0.3)
    # the CPU: cuDNN's kernels on a GPU are not bit-for-bit repeatable (an H100 ran this test on
    # "auto", and the resumed weights differed)
    assert fit(config, tmp_path / "whole", device="cpu", progress=False) == 0
    undo = stop_after_first_epoch(monkeypatch)
    assert fit(config, tmp_path / "cut", device="cpu", progress=False) == 130
    undo()
    (tmp_path / "cut" / ".last.pt.stale.tmp").write_bytes(b"left by a kill")
    assert fit(None, tmp_path / "cut", resume=True, device="cpu", progress=False) == 0
    assert not list((tmp_path / "cut").glob("*.tmp"))
    a, b = (load_checkpoint(tmp_path / n / "last.pt")["state_dict"] for n in ("whole", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ctrl_c_says_what_was_kept(splits, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "crnn_captcha.train", "--splits", str(splits), "--out", str(out),
           "--epochs", "500", "--patience", "0", *TINY]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "last.pt").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "continue with --resume" in err and "last.pt" in err
    assert (out / "curves.png").exists()


@pytest.mark.parametrize("setup,args,code,match", [
    (lambda d: (d / "t.csv").write_text(""), ["--train", "{d}/t.csv", "--val", "{s}/val.csv"], 1, "empty manifest"),
    (lambda d: (d / "t.csv").write_text("a,b\n1,2\n"), ["--train", "{d}/t.csv", "--val", "{s}/val.csv"], 1, "header"),
    (lambda d: (d / "t.csv").write_bytes(b"path,label\n\xff\xfe.png,x\n"), ["--train", "{d}/t.csv", "--val", "{s}/val.csv"],
     1, "UTF-8"),
    (None, ["--splits", "{s}", "--charset", "2345"], 2, "--charset '2345' lacks"),
    (None, ["--splits", "{s}", "--height", "20"], 2, "multiple of 32"),
    (None, ["--splits", "{s}", "--width", "16"], 2, "frames"),
    (lambda d: (d / "afile").write_text("x"), ["--splits", "{s}", "--out", "{d}/afile"], 2, "is a file"),
    (None, ["--out", "{d}/nothing", "--resume"], 2, "does not exist"),
])
def test_careless_training_commands_get_one_line(splits, tmp_path, capsys, setup, args, code, match):
    if setup:
        setup(tmp_path)
    argv = [a.format(d=tmp_path, s=splits) for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    assert train_main([*argv, "--epochs", "1", *TINY]) == code
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == err[-1] and match in errors[0], err
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--lr", "nan"], ["--lr", "inf"], ["--epochs", "0"],
                                  ["--dropout", "1.5"]])
def test_bad_numbers_are_usage_errors(splits, tmp_path, args):
    with pytest.raises(SystemExit) as e:
        train_main(["--splits", str(splits), "--out", str(tmp_path / "r"), *args, *TINY])
    assert e.value.code == 2


def test_read_only_out_is_one_line(splits, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write into a read-only folder; the check needs an ordinary user")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert train_main(["--splits", str(splits), "--out", str(ro / "run"), "--epochs", "1", *TINY]) == 2
    assert "Permission denied" in capsys.readouterr().err


def test_overlapping_and_repeated_rows_are_counted(splits, tmp_path, capsys):
    rows = (splits / "train.csv").read_text().splitlines()
    train = tmp_path / "train.csv"
    train.write_text("\n".join(rows + rows[1:4]) + "\n")
    val = tmp_path / "val.csv"
    val_rows = (splits / "val.csv").read_text().splitlines()
    val.write_text("\n".join(val_rows + rows[1:3]) + "\n")
    assert train_main(["--train", str(train), "--val", str(val), "--out", str(tmp_path / "r"), "--epochs", "1",
                       *TINY]) == 0
    err = capsys.readouterr().err
    assert "3 repeated row(s)" in err and "2 of the 8 val images are also training images" in err


def test_a_val_label_with_an_unseen_character_is_a_counted_misread(splits, tmp_path):
    from crnn_captcha.errors import CaptchaWarning

    rows = (splits / "val.csv").read_text().splitlines()
    path, label = rows[1].rsplit(",", 1)
    rows[1] = f"{path},{label[:-1]}Ж"
    val = tmp_path / "val.csv"
    val.write_text("\n".join(rows) + "\n")
    with pytest.warns(CaptchaWarning, match="1 val label.*'Ж'.*count as misreads"):
        assert fit(tiny_config(splits, val=str(val), epochs=1, patience=0), tmp_path / "run", progress=False) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["val_n"] == len(rows) - 1  # every val image counted, the unreadable one too
    assert metrics["val_accuracy"] <= (len(rows) - 2) / (len(rows) - 1)


def test_ddp_with_too_few_gpus_is_one_line(monkeypatch):
    from crnn_captcha.training.runtime import Dist

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    from crnn_captcha import OptionError

    with pytest.raises(OptionError, match="4 processes .* 1 GPU"):
        Dist("cuda")


@pytest.mark.parametrize("cores, local_world, cuda, cap, expected", [
    (2, None, False, 12, 0),    # training on the CPU: the step needs the cores, no loader processes
    (16, None, True, 12, 12),   # one GPU on 16 cores: all but two, at most the cap
    (16, None, True, None, 14),  # pretraining's renderers: no cap
    (16, "8", True, 12, 1),     # 8 GPUs share the 14 cores: one each
    (4, None, True, 12, 2),
    (2, None, True, 12, 1),     # at least one beside a GPU
])
def test_default_workers_from_the_cores_and_the_processes(monkeypatch, cores, local_world, cuda, cap, expected):
    from crnn_captcha.training import runtime

    monkeypatch.setattr(runtime.os, "cpu_count", lambda: cores)
    if local_world:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
    else:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert runtime.default_workers(cuda, cpu=0, cap=cap) == expected


def test_early_stop_names_the_epoch_it_stopped_after_and_what_best_pt_holds(splits, tmp_path, monkeypatch, capsys):
    """A tie in accuracy and CER with a lower val loss is a better epoch: it moves best.pt and restarts
    the count (a run whose val accuracy tops out early goes on while its loss falls)."""
    from crnn_captcha.training import loop as train_module

    losses = iter([1.0, 0.9, 1.1, 0.8, 1.2, 1.3, 0.1, 0.1])  # epochs 2 and 4 tie epoch 1 with a lower loss

    def fixed_scores(*a, **kw):
        return {"loss": next(losses), "accuracy": 0.5, "char_accuracy": 0.8, "cer": 0.2, "n": 4}

    monkeypatch.setattr(train_module, "validate", fixed_scores)
    assert fit(tiny_config(splits, epochs=8, patience=2), tmp_path / "run", progress=False) == 0
    err = capsys.readouterr().err
    assert "early stop after epoch 6: no better val score for 2 epochs; best.pt holds epoch 4" in err
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 6
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=False)["metrics"]["epoch"] == 4


def test_ctrl_c_in_the_first_epoch_keeps_nothing_and_says_so(splits, tmp_path, monkeypatch, capsys):
    from crnn_captcha.training import loop as train_module

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_one_epoch", interrupted)
    assert fit(tiny_config(splits, epochs=2), tmp_path / "run", progress=False) == 130
    err = capsys.readouterr().err
    assert "before any epoch finished: nothing was kept" in err and "--resume" not in err.split("nothing")[1][:30]
    assert not (tmp_path / "run" / "last.pt").exists() and "wrote" not in err


def test_out_under_a_file_is_one_line(splits, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert train_main(["--splits", str(splits), "--out", str(tmp_path / "afile" / "run"), "--epochs", "1", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot be written" in err and len(err.splitlines()) == 1


def test_resume_from_another_folder_with_the_same_data_written_differently(splits, tmp_path, monkeypatch):
    monkeypatch.chdir(splits.parent)
    out = tmp_path / "run"
    assert train_main(["--splits", splits.name, "--out", str(out), "--epochs", "1", "--patience", "0", *TINY]) == 0
    monkeypatch.chdir(tmp_path)
    assert train_main(["--out", str(out), "--resume", "--epochs", "2", "--splits", str(splits) + "/", "--no-progress"]) == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 2


def test_learning_rate_and_length_follow_the_start_and_the_device(splits):
    import math

    from crnn_captcha.training.recipe import GPU_BATCH_FROM, MIN_EPOCH_SAMPLES, auto_steps, resolve
    from crnn_captcha.training.loaders import load_data

    for init, lr in (("scratch", 1e-3), ("pretrained", 4e-3)):
        config = TrainConfig(train=str(splits / "train.csv"), val=str(splits / "val.csv"), init=init)
        train, val = load_data(config)
        out, notes = resolve(config, train, val, cuda=False)
        assert (out.batch_size, out.lr) == (16, lr) and f"lr {lr:g}," in notes[-1]
        steps = auto_steps(len(train), init != "scratch")
        assert out.epochs == math.ceil(steps / (max(len(train), MIN_EPOCH_SAMPLES) // 16))
        on_gpu, notes = resolve(config, train, val, cuda=True)  # a small set: the CPU's batch on a GPU too
        assert (on_gpu.batch_size, on_gpu.lr) == (16, lr) and any("batch 16 on the GPU too" in n for n in notes)
        many = (train * (GPU_BATCH_FROM // len(train) + 1))[:GPU_BATCH_FROM]
        on_gpu, notes = resolve(config, many, val, cuda=True)  # from GPU_BATCH_FROM images: 4x the batch, 2x the rate
        assert (on_gpu.batch_size, on_gpu.lr) == (64, 2 * lr) and not any("GPU too" in n for n in notes)
        assert resolve(config, many, val, cuda=False)[0].batch_size == 16
        given, _ = resolve(replace(config, lr=5e-4), train, val, cuda=False)
        assert given.lr == 5e-4
    config = TrainConfig(train=str(splits / "train.csv"), val=str(splits / "val.csv"), init="general")
    general, _ = resolve(config, *load_data(config), cuda=False)  # a shipped model by name, its size kept
    assert (general.lr, tuple(general.channels), general.hidden) == (4e-3, (16, 32, 64, 64, 144), 96)


def test_training_starts_from_the_general_reader_unless_an_install_lacks_it(monkeypatch, tmp_path):
    from crnn_captcha.read import shipped
    from crnn_captcha.read.model import CRNNConfig
    from crnn_captcha.training.recipe import architecture

    config = TrainConfig(train="t.csv", val="v.csv")  # --init left to auto
    notes: list[str] = []
    chosen = architecture(config, notes)
    assert (chosen["init"], chosen["hidden"], notes) == ("general", 96, [])  # the general reader's size, kept
    monkeypatch.setattr(shipped, "shipped", lambda name: tmp_path / name)  # an install of our own making
    (tmp_path / shipped.PRETRAINED_NAME).write_bytes(b"")
    assert shipped.default_start() == "pretrained"  # no general reader: the smaller start
    (tmp_path / shipped.PRETRAINED_NAME).unlink()
    assert shipped.default_start() is None
    assert architecture(replace(config, hidden=32), notes) == {"init": "scratch", "hidden": 32,
                                                               "channels": CRNNConfig.channels, "lstm_layers": 1}
    assert notes == ["start: no pretrained model is installed, so from scratch"]


def test_an_input_widened_for_long_labels_stretches_the_text_and_the_reader_does_the_same(tmp_path):
    from crnn_captcha import CaptchaReader
    from crnn_captcha.errors import ImageError
    from crnn_captcha.training.loaders import load_data
    from crnn_captcha.training.recipe import resolve

    for part, n in (("train", 16), ("val", 6)):  # 120x50, the text 34 px high: 77 px at 32 high, narrow for 6
        make_folder(tmp_path / part, n, seed=len(part), length=6, size=(120, 50))
    config = TrainConfig(train=str(tmp_path / "train"), val=str(tmp_path / "val"), init="scratch",
                         channels=(8, 16, 16, 16, 24), hidden=32, lstm_layers=1, epochs=1)
    out, notes = resolve(config, *load_data(config), cuda=False)
    assert out.height == 32 and out.width > 77 and out.width % 16 == 0
    assert out.x_scale == round(out.width / (32 * 120 / 50), 3) and out.max_aspect_error == 3.0
    assert f"text {out.x_scale:g}x across" in notes[-1]
    given, _ = resolve(replace(config, width=out.width), *load_data(config), cuda=False)
    assert given.x_scale == 1.0  # a width given on the command line: padded, as before
    older = {k: v for k, v in out.to_dict().items() if k != "x_scale"}
    assert TrainConfig.from_dict(older).x_scale == 1.0  # a run saved before: padded, and resumed so
    assert fit(config, tmp_path / "run", progress=False) == 0
    reader = CaptchaReader(tmp_path / "run" / "best.pt")
    assert (reader.preprocess.width, reader.preprocess.x_scale) == (out.width, out.x_scale)
    image = next((tmp_path / "val").iterdir())
    assert isinstance(reader.read(image), str)  # a 120x50 image fits the input once stretched: no shape error
    with pytest.raises(ImageError, match="shaped like 77x32"):
        reader.read(np.full((100, 40), 255, np.uint8))


def test_plain_finish_trains_the_last_epochs_on_the_images_as_they_are(splits, tmp_path, capsys, monkeypatch):
    from crnn_captcha.training import loop as train_module

    seen, real = [], train_module.train_one_epoch

    def spy(net, model, task, loader, *args, **kwargs):
        seen.append((loader.dataset.augment is not None, loader.dataset.splice_prob))
        return real(net, model, task, loader, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", spy)
    assert fit(tiny_config(splits, epochs=4, patience=0, plain_finish=0.25), tmp_path / "run", progress=False) == 0
    assert seen == [(True, 0.5)] * 3 + [(False, 0.0)]
    assert "epochs 4-4: the training images as they are" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "run" / "best.pt")["metrics"]["epoch"] == 4  # the settled epoch, whatever its val score
    assert train_module.first_plain_epoch(replace(tiny_config(splits), epochs=94)) == 85  # the last 10 of 94
    assert train_module.first_plain_epoch(replace(tiny_config(splits), epochs=94, plain_finish=0.0)) is None
    # a run saved before the plain finish existed resumes as it began: augmented to the end
    assert TrainConfig.from_dict({"train": "t.csv", "val": "v.csv", "init": "scratch"}).plain_finish == 0.0


def test_a_settled_epoch_replaces_the_best_whatever_its_val_score(tmp_path):
    from crnn_captcha.training.run_folder import Checkpointer

    saver = Checkpointer(tmp_path, writer=False)
    rec = lambda epoch, acc: {"epoch": epoch, "val_accuracy": acc, "val_cer": 1 - acc, "val_loss": 1 - acc}  # noqa: E731
    assert saver.record(rec(1, 0.80)) and saver.record(rec(2, 0.90))
    assert not saver.record(rec(3, 0.88))  # at the full rate: a lower score is not kept
    assert saver.record(rec(4, 0.86), settled=True) and saver.best["epoch"] == 4  # the plain finish: kept
    assert saver.since_best == 0


def test_optimizer_state_saved_by_a_gpu_run_resumes_unfused_on_the_cpu():
    from crnn_captcha.training.loop import Optimisation

    model = torch.nn.Linear(3, 2)
    config = TrainConfig(lr=1e-3, epochs=2)
    first = Optimisation(model, config, steps_per_epoch=1, cuda=False)
    first.step(model, model(torch.randn(4, 3)).pow(2).mean())
    saved = first.state()
    saved["optimizer"]["param_groups"] = [{**g, "fused": True} for g in saved["optimizer"]["param_groups"]]  # as on a GPU

    again = Optimisation(model, config, steps_per_epoch=1, cuda=False)
    again.restore(saved)
    assert [g["fused"] for g in again.opt.param_groups] == [None]
    again.step(model, model(torch.randn(4, 3)).pow(2).mean())  # a CPU step on the restored state
    assert [float(s["step"]) for s in again.opt.state.values()] == [2.0, 2.0]


def test_a_run_says_how_long_it_will_take_and_names_everything_it_wrote(splits, tmp_path, capsys):
    """After its first epoch a run says how long all its epochs should take; the last line names
    curves.png with the other files; a resume asked for fewer epochs than were run says that nothing
    was trained, and why."""
    out = tmp_path / "run"
    assert train_main(["--splits", str(splits), "--out", str(out), "--epochs", "2", *TINY]) == 0
    err = capsys.readouterr().err
    assert re.search(r"the 2 epochs of this run should take about \d+ s at this pace", err), err
    assert err.strip().splitlines()[-1].endswith(f"{out / 'metrics.jsonl'}, {out / 'curves.png'}")
    assert train_main(["--out", str(out), "--resume", "--epochs", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "nothing to train" in err and "it ran 2 epochs already, more than the 1 asked for" in err, err
    assert "ran all 1 epochs" not in err


def test_a_second_run_into_a_folder_in_use_is_refused(splits, tmp_path, capsys):
    """Two runs into one --out would mix their epochs in one metrics.jsonl: the folder's lock, held
    for as long as a run's process lives, refuses the second in one line."""
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a+") as held:  # as a first run's process holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("process 4242\n")
        held.flush()
        assert train_main(["--splits", str(splits), "--out", str(out), "--epochs", "1", *TINY]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"error: {out} is in use by another training run (process 4242); wait for it to end, or choose "
                   "another --out")
    assert not (out / "metrics.jsonl").exists()
    assert train_main(["--splits", str(splits), "--out", str(out), "--epochs", "1", *TINY]) == 0  # let go: runs


def test_a_resume_on_data_that_changed_says_so(splits, tmp_path, capsys):
    rows = (splits / "train.csv").read_text().splitlines()
    train = tmp_path / "train.csv"
    train.write_text("\n".join(r if i == 0 else str((splits / r.split(",")[0]).resolve()) + "," + r.split(",")[1]
                               for i, r in enumerate(rows)) + "\n")
    args = ["--train", str(train), "--val", str(splits / "val.csv"), "--out", str(tmp_path / "run"), *TINY]
    assert train_main([*args, "--epochs", "1"]) == 0
    train.write_text("\n".join(train.read_text().splitlines()[:20]) + "\n")  # 19 of the rows left
    capsys.readouterr()
    assert train_main(["--out", str(tmp_path / "run"), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert f"the run's data changed since it started ({len(rows) - 1:,} train images, now 19)" in capsys.readouterr().err


def test_the_folder_lock_is_let_go_after_a_failed_start_and_is_optional_where_locks_fail(splits, tmp_path,
                                                                                           monkeypatch):
    """A run that fails after taking the folder frees it for the next run in the same process; on
    a file system without locks the run goes on, with a warning."""
    import errno
    import fcntl

    from crnn_captcha.errors import CaptchaWarning, OptionError

    out = tmp_path / "run"
    with pytest.raises(OptionError, match="lacks characters"):
        fit(tiny_config(splits, epochs=1, charset="2345678"), out, progress=False)  # labels it cannot read
    assert fit(tiny_config(splits, epochs=1), out, progress=False) == 0  # not refused as "in use"

    def no_locks(handle, how):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(CaptchaWarning, match="cannot lock it \\(No locks available\\)"):
        assert fit(tiny_config(splits, epochs=1), tmp_path / "nfs", progress=False) == 0
