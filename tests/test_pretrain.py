"""The pretrained start: synthetic pretraining, then fine-tuning that keeps what carries over."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crnn_captcha import CaptchaReader
from crnn_captcha.read.charset import Charset
from crnn_captcha.read.checkpoint import atomic_save, load_checkpoint, make_checkpoint
from crnn_captcha.read.images import PreprocessConfig
from crnn_captcha.read.model import CRNN, CRNNConfig
from crnn_captcha.training.synthetic_data import FreshSampler
from crnn_captcha.pretrain import main as pretrain_main
from crnn_captcha.split import main as split_main
from crnn_captcha.train import main as train_main
from crnn_captcha.training.transfer import start_from
from conftest import stop_after_first_epoch
from synth import make_folder

TINY = ["--channels", "8", "16", "16", "16", "24", "--hidden", "32"]


def test_fresh_sampler_draws_new_images_each_epoch_and_shards():
    s = FreshSampler(4)
    s.set_epoch(1)
    first = list(s)
    s.set_epoch(2)
    assert first == [0, 1, 2, 3] and list(s) == [4, 5, 6, 7]
    shards = [FreshSampler(3, rank, 2) for rank in (0, 1)]
    for shard in shards:
        shard.set_epoch(2)
    a, b = (list(shard) for shard in shards)
    assert not set(a) & set(b) and sorted(a + b) == list(range(6, 12))


def test_new_alphabet_keeps_shared_rows_and_names_new_ones(tmp_path):
    source_cs = Charset("abcxyz")
    source = CRNN(CRNNConfig(num_classes=source_cs.num_classes, channels=(8, 16, 16, 16, 24), hidden=32,
                             in_channels=3, rows=2))
    path = tmp_path / "src.pt"
    atomic_save(make_checkpoint(source, source_cs, PreprocessConfig(channels=3, resize="pad")), path)
    target_cs = Charset("acQ")  # a and c known, Q new
    target = CRNN(CRNNConfig(num_classes=target_cs.num_classes, height=64, width=96, channels=(8, 16, 16, 16, 24),
                             hidden=32, in_channels=1, rows=2))
    notes = start_from(target, target_cs, str(path))
    assert any("2 character(s)" in n and "'Q'" in n for n in notes), notes
    s, t = source.state_dict(), target.state_dict()
    for new_row, old_row in ((0, 0), (1, 1), (2, 3)):  # blank, a, c
        assert torch.equal(t["head.weight"][new_row], s["head.weight"][old_row])
    assert torch.equal(t["rnn.weight_ih_l0"], s["rnn.weight_ih_l0"])
    # a gray model's first convolution is the colour one summed over its channels
    assert torch.allclose(t["backbone.features.0.0.weight"], s["backbone.features.0.0.weight"].sum(1, keepdim=True))
    gray = torch.rand(1, 1, 32, 64)
    source.eval()
    target.eval()
    with torch.no_grad():  # so the gray model reads a gray image as the colour model reads it in RGB
        a = source.backbone(gray.expand(1, 3, 32, 64))
        b = target.backbone(gray)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_pretrain_then_train_then_read_round_trip(tmp_path, capsys):
    out = tmp_path / "pre"
    assert pretrain_main(["--out", str(out), "--epochs", "1", "--epoch-samples", "64", "--glyph-epochs", "1",
                          "--val-samples", "16", "--batch-size", "16", "--workers", "0", "--no-progress", *TINY]) == 0
    pre = load_checkpoint(out / "pretrained.pt")
    assert pre["preprocess"]["channels"] == 3 and len(pre["charset"]) > 62
    make_folder(tmp_path / "imgs", 24, seed=1)
    assert split_main(["--src", str(tmp_path / "imgs"), "--out", str(tmp_path / "splits")]) == 0
    capsys.readouterr()
    run = tmp_path / "run"
    assert train_main(["--splits", str(tmp_path / "splits"), "--out", str(run), "--epochs", "1", "--init",
                       str(out / "pretrained.pt"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "backbone and LSTM from" in err and "output rows kept" in err
    trained = load_checkpoint(run / "best.pt")
    assert trained["model_config"]["hidden"] == 32 and trained["model_config"]["channels"] == [8, 16, 16, 16, 24]
    assert json.loads(json.dumps(trained["train_args"]))["init"] == str(out / "pretrained.pt")
    reader = CaptchaReader(run / "best.pt", device="cpu")
    assert reader.charset.chars == Charset.from_labels(p.stem for p in (tmp_path / "imgs").iterdir()).chars
    assert reader.preprocess.channels == 1  # gray captchas: the colour start was adapted to gray
    assert len(reader.predict(sorted((tmp_path / "imgs").iterdir())[0]).char_confidences) <= 8
    # the start fixes the architecture: a clash is a one-line usage error
    assert train_main(["--splits", str(tmp_path / "splits"), "--out", str(tmp_path / "r2"), "--epochs", "1",
                       "--init", str(out / "pretrained.pt"), "--hidden", "64", "--no-progress"]) == 2
    assert "differs from the start model's" in capsys.readouterr().err
    # a further pretraining run from that model keeps its size without being told it
    more = tmp_path / "more"
    assert pretrain_main(["--out", str(more), "--init", str(out / "pretrained.pt"), "--epochs", "1", "--epoch-samples",
                          "32", "--val-samples", "16", "--batch-size", "16", "--workers", "0", "--no-progress"]) == 0
    assert "backbone and LSTM from" in capsys.readouterr().err and not (more / "backbone.pt").exists()
    assert load_checkpoint(more / "pretrained.pt")["model_config"]["hidden"] == 32
    assert pretrain_main(["--out", str(tmp_path / "m2"), "--init", str(out / "pretrained.pt"), "--hidden", "64"]) == 2
    assert "--hidden 64 differs from the start model's 32" in capsys.readouterr().err


def test_pretrain_resume_keeps_the_runs_settings(tmp_path, capsys, monkeypatch):
    """A bare --resume continues the run with its own --epochs, --batch-size, --epoch-samples and
    --seed, not the options' defaults: on the CPU, exactly as if it had never stopped."""
    common = ["--stages", "sequence", "--val-samples", "8", "--workers", "0", "--no-progress", *TINY]
    first = ["--epochs", "2", "--batch-size", "8", "--epoch-samples", "16", "--seed", "3"]
    assert pretrain_main(["--out", str(tmp_path / "whole"), *first, *common]) == 0
    undo = stop_after_first_epoch(monkeypatch)
    assert pretrain_main(["--out", str(tmp_path / "cut"), *first, *common]) == 130
    undo()
    capsys.readouterr()
    assert pretrain_main(["--out", str(tmp_path / "cut"), "--resume", *common]) == 0
    assert "2 epochs of 16 images" in capsys.readouterr().err
    whole, cut = (load_checkpoint(tmp_path / run / "sequence" / "last.pt")["state_dict"] for run in ("whole", "cut"))
    assert all(torch.equal(whole[k], cut[k]) for k in whole)


def test_pretrain_refuses_an_epoch_smaller_than_a_batch(tmp_path, capsys):
    """A sequence epoch below one batch per process would train on nothing (the part batch is
    dropped): a one-line usage error, before the glyph stage spends its time."""
    from crnn_captcha.errors import OptionError
    from crnn_captcha.training.pretraining import check_epoch
    out = tmp_path / "p"
    assert pretrain_main(["--out", str(out), "--epoch-samples", "12", "--batch-size", "16", "--workers", "0",
                          "--no-progress", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --epoch-samples 12: less than one batch of 16") and "at least 16" in err
    assert len(err.splitlines()) == 1 and not (out / "backbone.pt").exists()
    check_epoch(32, 16, 2)
    with pytest.raises(OptionError, match="of 16 for each of 3 processes; give at least 48"):
        check_epoch(32, 16, 3)


@pytest.mark.parametrize("args,match", [(["--glyphs", "/nonexistent"], "no such"), (["--resume"], "does not exist"),
                                        (["--init", "/nonexistent.pt"], "no such checkpoint"),
                                        (["--init", "pretrained", "--stages", "glyph"], "cannot follow a glyph stage")])
def test_pretrain_checks_paths_before_loading(tmp_path, capsys, args, match):
    assert pretrain_main(["--out", str(tmp_path / "p"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1


def test_height_reaches_both_stages_and_the_glyph_stage_runs_through_the_training_loop(tmp_path, capsys,
                                                                                     monkeypatch):
    """--height sets the glyph stage's input and the sequence stage's (four times as wide); the glyph
    stage trains through the same loop as every run (its epochs logged alike)."""
    from crnn_captcha.training import loop
    from crnn_captcha.training.pretraining import GlyphTask

    tasks, real = [], loop.train_one_epoch

    def spy(net, model, task, *args, **kwargs):
        tasks.append(type(task).__name__)
        return real(net, model, task, *args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", spy)
    out = tmp_path / "p"
    assert pretrain_main(["--out", str(out), "--height", "64", "--glyph-epochs", "1", "--epochs", "1",
                          "--epoch-samples", "16", "--val-samples", "8", "--batch-size", "8", "--workers", "0",
                          "--no-progress", *TINY]) == 0
    assert tasks == [GlyphTask.__name__, "CTCTask"]
    glyph, whole = load_checkpoint(out / "backbone.pt", kind="glyph"), load_checkpoint(out / "pretrained.pt")
    assert glyph["preprocess"]["height"] == 64 and glyph["metrics"]["val_n"] == 2000
    assert (whole["preprocess"]["height"], whole["preprocess"]["width"]) == (64, 256)
    assert "epoch   1  loss " in capsys.readouterr().err
    assert pretrain_main(["--out", str(tmp_path / "q"), "--height", "48"]) == 2
    assert "the sequence stage's model needs a multiple of 32" in capsys.readouterr().err


def test_pretrain_from_python_with_a_config(tmp_path):
    """The library call the command makes: a PretrainConfig, settings the caller did not choose left
    to the start model (here: its size)."""
    from crnn_captcha import PretrainConfig
    from crnn_captcha.training import pretrain

    config = PretrainConfig(init="scratch", channels=(8, 16, 16, 16, 24), hidden=32, epochs=1, epoch_samples=8,
                            val_samples=4, batch_size=8)
    assert config.chosen_stages() == ["sequence"] and {"init", "hidden", "channels"} <= config.given()
    assert pretrain(config, tmp_path / "p", workers=0, progress=False) == 0
    stored = load_checkpoint(tmp_path / "p" / "pretrained.pt")
    assert stored["model_config"]["hidden"] == 32 and stored["train_args"]["epoch_samples"] == 8


@pytest.mark.slow
def test_gpu_check_script_times_both_commands(tmp_path, capsys):
    """scripts/gpu_check.py on the CPU (CI has no GPU): both commands run and report their speed,
    and the utilisation columns say n/a where nvidia-smi is absent."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, str(script), "--out", str(out), "--n-train", "32", "--n-val", "8",
                           "--epochs", "2", "--pretrain-samples", "64", "--pretrain-val", "8", "--device", "cpu",
                           "--breakdown", "2", "--step-batches", "4", "--pretrain-batches", "64,8",
                           "--pretrain-views", "1,2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "gpu_check.json").read_text())
    assert [r["command"] for r in results] == ["train", "pretrain", "pretrain --views 2", "pretrain --batch-size 8",
                                               "pretrain --batch-size 8 --views 2", "breakdown", "pretrain breakdown"]
    assert "each trained on in 2 views" in done.stderr
    assert all(r["renders_per_s"] == round(r["samples_per_s"] / 2) for r in results if "--views 2" in r["command"])
    rendered = results.pop()
    assert rendered["workers"] == 1 and rendered["render_images_per_s"] > 0 and rendered["views_images_per_s"] > 0
    assert set(rendered["step_images_per_s_by_batch"]) == {"4", "8", "64"}
    assert all(rate > 0 for rate in rendered["step_images_per_s_by_batch"].values())
    assert "pretrain's device step alone at batch 8:" in done.stdout
    split = results.pop()
    assert split["batch_size"] == 16 and split["workers"] == 0 and split["loader_images_per_s"] > 0
    assert set(split["step_images_per_s_by_batch"]) == {"4", "16"}  # JSON keys
    assert all(rate > 0 for rate in split["step_images_per_s_by_batch"].values())
    assert "device step alone at batch 4:" in done.stdout
    bad = subprocess.run([sys.executable, str(script), "--step-batches", "128,x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "'128,x' is not a list of batch sizes" in bad.stderr
    assert "Traceback" not in bad.stderr
    for r in results:
        assert r["rc"] == 0 and r["epochs"] == 2 and r["samples_per_s"] > 0
        if shutil.which("nvidia-smi") is None:
            assert r["gpu_util_mean"] is None
    assert "| train | 0 | 2 |" in done.stdout and "| pretrain | 0 | 2 |" in done.stdout
    assert "| pretrain --batch-size 8 | 0 | 2 |" in done.stdout


@pytest.mark.slow
def test_gpu_pretrain_script_starts_a_run_then_resumes_it(tmp_path):
    """scripts/gpu_pretrain.sh on the CPU, from a toy start: the first call starts the run from it
    with the settings the general reader is pretrained with, the second resumes it, and each hands
    back the run folder as one archive."""
    import os
    import tarfile

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_pretrain.sh"
    run, none, start = tmp_path / "run", tmp_path / "absent", tmp_path / "start.pt"
    from crnn_captcha.synthetic.config import DEFAULT_ALPHABET

    charset = Charset(DEFAULT_ALPHABET)  # the renderer's, so the start's output rows all carry over
    toy = CRNN(CRNNConfig(num_classes=charset.num_classes, channels=(8, 16, 16, 16, 24), hidden=16, in_channels=3,
                          rows=2, max_label_length=8))
    atomic_save(make_checkpoint(toy, charset, PreprocessConfig(channels=3, resize="pad")), start)
    extra = "--device cpu --workers 0 --threads 1 --epoch-samples 16 --val-samples 8 --batch-size 8 --epochs "
    env = {**os.environ, "RUN": str(run), "MINUTES": "3", "FONTS": str(none), "WHEELS": str(none), "INIT": str(start),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for call, epochs in ((1, 1), (2, 2)):
        out = tmp_path / f"out{call}"
        done = subprocess.run(["bash", str(script)], env={**env, "OUT": str(out), "EXTRA": extra + str(epochs)},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
        log = (out / "pretrain.log").read_text()
        assert "pretrain exit status 0" in log and "Traceback" not in log
        with tarfile.open(out / "run.tgz") as tgz:
            names = {n.lstrip("./") for n in tgz.getnames()}
        assert {"pretrain.json", "sequence/last.pt", "sequence/metrics.jsonl"} <= names
    first = (tmp_path / "out1" / "pretrain.log").read_text()
    assert f"start: backbone and LSTM from {start}" in first
    assert "resuming" in log and "after epoch 1" in log
    settings = json.loads((run / "pretrain.json").read_text())
    assert settings["views"] == 3 and settings["init"] == str(start) and settings["epochs"] == 2
    assert settings["stages"] == ["sequence"] and settings["batch_size"] == 8
    last = load_checkpoint(run / "sequence" / "last.pt", kind=None)
    assert last["model_config"]["channels"] == [8, 16, 16, 16, 24]  # the start's size
    assert len((run / "sequence" / "metrics.jsonl").read_text().splitlines()) == 2


def test_rendering_workers_leave_ctrl_c_to_the_main_process():
    # Ctrl-C reaches every process of the group; a worker must outlive it until the main process
    # has kept its epoch and ends the workers itself.
    import signal

    from crnn_captcha.training import synthetic_data

    before = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        synthetic_data._one_thread_worker(0)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_views_keep_the_batch_as_drawn_first_and_repeat_for_a_seed():
    """--views K: the batch as drawn, then K - 1 changed copies in the model's value range; the same
    seed draws the same copies (a resumed run sees its views again), another seed others."""
    from crnn_captcha.training.pretraining import SEQUENCE_INPUT as pre
    from crnn_captcha.training.views import batch_seed, new_views

    images = torch.rand(4, 3, pre.height, pre.width) * 2 - 1

    def views(seed):
        return new_views(images, 3, pre, torch.Generator().manual_seed(seed))

    a = views(batch_seed(["ab", "cd"], 0))
    assert a.shape == (12, 3, pre.height, pre.width) and torch.equal(a[:4], images)
    assert a.min() >= -1 and a.max() <= 1
    assert all((a[4 * k:4 * k + 4] - images).abs().mean() > 0.05 for k in (1, 2))
    assert torch.equal(a, views(batch_seed(["ab", "cd"], 0)))
    assert not torch.equal(a, views(batch_seed(["ab", "cd"], 1)))
    assert batch_seed(["ab", "cd"], 0) != batch_seed(["ab", "ce"], 0)
    assert torch.equal(new_views(images, 1, pre, torch.Generator()), images)


def test_views_task_trains_on_every_version_with_its_label():
    """The loss of a batch in K views is that of K times the images, each with its own label: the
    same as the plain loss where the copies are left out (K = 1)."""
    from crnn_captcha.training.loop import CTCTask, ViewsCTCTask, ctc_task
    from crnn_captcha.training.pretraining import SEQUENCE_INPUT as pre

    charset = Charset("abc")
    model = CRNN(CRNNConfig(num_classes=charset.num_classes, height=pre.height, width=pre.width,
                            channels=(8, 16, 16, 16, 24), hidden=16, in_channels=3))
    labels = ["ab", "cab"]
    targets = [torch.tensor(charset.encode(t)) for t in labels]
    batch = (torch.rand(2, 3, pre.height, pre.width) * 2 - 1, torch.cat(targets), torch.tensor([2, 3]), labels)
    loss, n = ctc_task(charset, pre, 3, 0).loss(model, batch, torch.device("cpu"))
    assert n == 6 and torch.isfinite(loss)
    assert isinstance(ctc_task(charset, pre), CTCTask) and not isinstance(ctc_task(charset, pre), ViewsCTCTask)
    model.eval()  # no dropout: the one-view loss is the plain loss
    plain, _ = CTCTask(charset, pre).loss(model, batch, torch.device("cpu"))
    assert torch.allclose(plain, ViewsCTCTask(charset, pre, 1, 0).loss(model, batch, torch.device("cpu"))[0])


@pytest.mark.parametrize("value", ["0", "9", "two"])
def test_pretrain_refuses_a_bad_views_value(tmp_path, capsys, value):
    try:  # the parser exits for a value that is no whole number of at least 1; the run refuses more than 8
        status = pretrain_main(["--out", str(tmp_path / "p"), "--views", value])
    except SystemExit as e:
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert "--views" in err and len(err.splitlines()) == 1 and not (tmp_path / "p").exists()


def test_pretrain_resume_keeps_the_runs_val_set_and_may_change_views_and_epochs(tmp_path, capsys):
    """A run keeps its settings in OUT/pretrain.json: a bare --resume goes on with its own val set
    (best.pt compares epochs on one set), --views and --epochs may change, another setting is
    refused in one line, and a run started from --init needs no --init again."""
    out = tmp_path / "run"
    assert pretrain_main(["--out", str(out), "--init", "pretrained", "--epochs", "1", "--batch-size", "8",
                          "--epoch-samples", "16", "--val-samples", "8", "--views", "2", "--workers", "0",
                          "--no-progress"]) == 0
    assert json.loads((out / "pretrain.json").read_text())["views"] == 2
    assert "each trained on in 2 views" in capsys.readouterr().err
    assert pretrain_main(["--out", str(out), "--resume", "--epochs", "2", "--views", "3", "--workers", "0",
                          "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "2 epochs of 16 images, each trained on in 3 views, val 8" in err
    history = [json.loads(line) for line in (out / "sequence" / "metrics.jsonl").read_text().splitlines()]
    assert [h["val_n"] for h in history] == [8, 8]
    assert pretrain_main(["--out", str(out), "--resume", "--epochs", "3", "--val-samples", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--val-samples 32 (the run has 8)" in err and len(err.splitlines()) == 1


def test_sequence_input_takes_every_shape_the_default_input_takes():
    """A wider input or a wider drawing refuses no captcha shape the default input reads (width/height
    from 4/3 to 12), and the default input is as before."""
    from crnn_captcha.training.pretraining import sequence_input

    assert sequence_input(32) == PreprocessConfig(height=32, width=128, channels=3, resize="pad")
    for width, x_scale in ((128, 1.0), (192, 1.5), (128, 1.5), (256, 1.0), (192, 1.0)):
        pre = sequence_input(32, width, x_scale)
        typical = width / (32 * x_scale)
        assert (pre.width, pre.x_scale) == (width, x_scale)
        assert typical * pre.max_aspect_error >= 12 - 1e-6 and typical / pre.max_aspect_error <= 4 / 3 + 1e-6
    assert sequence_input(32, 192, 1.5).max_aspect_error == 3.0
    assert sequence_input(32, 128, 1.5).max_aspect_error == 4.5


def test_pretrain_with_a_wider_input_writes_a_reader_of_it_and_resumes_it(tmp_path, capsys):
    """--sequence-width and --x-scale shape the sequence stage's input, the pretrained model reads
    captchas so, and a resume keeps them (another value is refused in one line)."""
    out = tmp_path / "wide"
    common = ["--init", "scratch", "--batch-size", "8", "--epoch-samples", "16", "--val-samples", "8",
              "--workers", "0", "--no-progress", *TINY]
    assert pretrain_main(["--out", str(out), "--epochs", "1", "--sequence-width", "192", "--x-scale", "1.5",
                          "--x-spread", "1.5", *common]) == 0
    assert "drawn 1-2.25x as wide" in capsys.readouterr().err
    pre = load_checkpoint(out / "pretrained.pt")["preprocess"]  # read at --x-scale, whatever the spread
    assert (pre["width"], pre["x_scale"], pre["max_aspect_error"]) == (192, 1.5, 3.0)
    reader = CaptchaReader(out / "pretrained.pt")
    sample = Path(__file__).parent.parent / "crnn_captcha" / "samples" / "8xypd.png"
    read = reader.predict(sample)  # a 200x50 captcha: taken, drawn 1.5x as wide into the 192-wide input
    assert read.error is None and isinstance(read.text, str)
    capsys.readouterr()
    assert pretrain_main(["--out", str(out), "--resume", "--epochs", "2", "--workers", "0", "--no-progress"]) == 0
    assert load_checkpoint(out / "sequence" / "last.pt")["preprocess"]["width"] == 192
    assert "2 epochs of 16 images, drawn 1-2.25x as wide" in capsys.readouterr().err  # the spread kept too
    for option, value, stored in (("--x-scale", "1", "1.0 (the run has 1.5)"), ("--x-spread", "2", "2.0 (the run has 1.5)")):
        assert pretrain_main(["--out", str(out), "--resume", "--epochs", "3", option, value]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{option} {stored}" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("args,match", [(["--sequence-width", "190"], "--sequence-width 190: give a multiple of 4"),
                                        (["--sequence-width", "16"], "at least --height (32)"),
                                        (["--x-scale", "9"], "--x-scale: '9' is above the largest allowed value, 4"),
                                        (["--x-scale", "0"], "--x-scale: '0' is below the smallest allowed value"),
                                        (["--x-spread", "0.5"], "--x-spread: '0.5' is below the smallest allowed value, 1"),
                                        (["--x-spread", "nan"], "--x-spread: 'nan' is not a finite number")])
def test_pretrain_refuses_a_bad_input_shape(tmp_path, capsys, args, match):
    try:  # the parser exits for a scale outside 0.25-4; the run refuses a width the model cannot take
        status = pretrain_main(["--out", str(tmp_path / "p"), "--init", "scratch", *args])
    except SystemExit as e:
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1 and not (tmp_path / "p").exists()


def test_pretrain_from_python_refuses_a_bad_drawing_scale(tmp_path):
    from crnn_captcha import PretrainConfig
    from crnn_captcha.errors import OptionError
    from crnn_captcha.training import pretrain

    with pytest.raises(OptionError, match="--x-scale 9: give a factor from 0.25 to 4"):
        pretrain(PretrainConfig(init="scratch", x_scale=9.0), tmp_path / "p")
    assert not (tmp_path / "p").exists()
    with pytest.raises(OptionError, match="--x-spread 0.5: give a factor from 1"):
        pretrain(PretrainConfig(init="scratch", x_spread=0.5), tmp_path / "p")
    with pytest.raises(OptionError, match="--x-scale 0.25 with --x-spread 4 draws images 0.0625 times as wide"):
        pretrain(PretrainConfig(init="scratch", x_scale=0.25, x_spread=4.0), tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_spread_draws_each_training_image_at_its_own_width_and_the_same_on_every_pass():
    """--x-spread: item i is drawn at x_scale times its own factor within the spread, the same each
    time (a resumed run sees the same images); without a spread, every item at x_scale."""
    from crnn_captcha.training.pretraining import make_renderer, sequence_input
    from crnn_captcha.training.synthetic_data import SynthCaptchas

    renderer = make_renderer(7)
    charset = Charset(renderer.config.alphabet)
    pre = sequence_input(32, 192, 1.5)
    plain, spread = SynthCaptchas(renderer, charset, pre), SynthCaptchas(renderer, charset, pre, x_spread=1.5)
    scales = [spread.drawn_as(i).x_scale for i in range(400)]
    assert all(1.0 - 1e-9 <= s <= 2.25 + 1e-9 for s in scales)
    assert min(scales) < 1.1 and max(scales) > 2.1 and sum(s < 1.5 for s in scales) > 150  # both sides, even in log
    assert spread.drawn_as(3) == spread.drawn_as(3) and plain.drawn_as(3) is pre
    a, b, again = plain[3][0], spread[3][0], spread[3][0]
    assert a.shape == b.shape == (3, 32, 192) and torch.equal(b, again) and not torch.equal(a, b)
    assert plain[3][2] == spread[3][2]  # the same captcha, drawn to another width
