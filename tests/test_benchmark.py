"""scripts/benchmark.py --zero-shot: each set read once per reader, exact and case-folded, and the mean."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "crnn_captcha" / "samples" / "8xypd.png"


def test_zero_shot_scores_each_set_exact_and_case_folded(tmp_path):
    lower, upper = tmp_path / "lower" / "test.csv", tmp_path / "upper" / "test.csv"
    for manifest, label in ((lower, "8xypd"), (upper, "8XYPD")):
        manifest.parent.mkdir()
        manifest.write_text(f"path,label\n{SAMPLE},{label}\n")
    out = subprocess.run([sys.executable, "scripts/benchmark.py", "--zero-shot", str(lower), str(upper),
                          "--readers", "crnn_captcha", "--threads", "1", "--checkpoint", "captcha_v2",
                          "--json", str(tmp_path / "zs.json")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    sets = json.loads((tmp_path / "zs.json").read_text())["results"][0]["sets"]
    assert [(s["set"], s["n"], s["exact"], s["folded"]) for s in sets] == [("lower", 1, 1.0, 1.0), ("upper", 1, 0.0, 1.0)]
    assert "| upper | 1 | 0.0% / 100.0% (" in out.stdout
    assert "| mean over sets (case-folded) | | 100.0% |" in out.stdout


def test_zero_shot_reads_with_the_general_reader_unless_told(tmp_path):
    manifest = tmp_path / "one" / "test.csv"
    manifest.parent.mkdir()
    manifest.write_text(f"path,label\n{SAMPLE},8xypd\n")
    out = subprocess.run([sys.executable, "scripts/benchmark.py", "--zero-shot", str(manifest), "--readers",
                          "crnn_captcha", "crnn_captcha_two_widths", "--threads", "1", "--json", str(tmp_path / "zs.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| set | n | crnn_captcha (general) | crnn_captcha (general, widths 1 and 2) |" in out.stdout
    saved = json.loads((tmp_path / "zs.json").read_text())
    assert saved["checkpoint"] == "general" and [r["reader"] for r in saved["results"]] == [
        "crnn_captcha", "crnn_captcha_two_widths"]
    assert all(r["installed"] and r["sets"][0]["n"] == 1 for r in saved["results"])


def test_read_widths_scores_each_width_and_the_surer_of_two(tmp_path):
    manifest = tmp_path / "sample" / "test.csv"
    manifest.parent.mkdir()
    copy = tmp_path / "copy.png"
    copy.write_bytes(SAMPLE.read_bytes())
    manifest.write_text(f"path,label\n{SAMPLE},8XYPD\n{copy},wrong\n")  # read right (case folded), then wrong
    out = subprocess.run([sys.executable, "scripts/read_widths.py", str(manifest), "--checkpoint", "captcha_v2",
                          "--scales", "1", "4"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    row = [line for line in out.stdout.splitlines() if line.startswith("| sample |")]
    cells = row[0].strip("| ").split(" | ")
    assert cells[:3] == ["sample", "2", "50.0%"] and cells[4] == "50.0%"  # x4 squashes the height: read or not
    assert float(cells[3].rstrip("%")) in (0.0, 50.0)
    missing = subprocess.run([sys.executable, "scripts/read_widths.py", str(tmp_path / "none.csv")], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr


def test_style_costs_reads_each_style_on_the_plain_images_texts(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import style_costs
    finally:
        sys.path.pop(0)

    class Reader:  # reads every image as "ab3", whatever the case it is asked in
        def read_batch(self, images, batch_size=64):
            return ["AB3"] * len(images)

    assert style_costs.accuracy(Reader(), [None] * 4, ["ab3", "xy", "ab3", "ab4"]) == 0.5
    out = subprocess.run([sys.executable, "scripts/style_costs.py", "--checkpoint", "general", "--n", "10",
                          "--styles", "centred", "bold"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    plain = float(out.stdout.split("plain reads ")[1].split("%")[0])
    rows = [line.strip("| ").split(" | ") for line in out.stdout.splitlines() if line.startswith(("| centred", "| bold"))]
    assert sorted(r[0] for r in rows) == ["bold", "centred"]
    for name, read, cost in rows:  # each cost is the plain images' accuracy less the style's
        assert abs(plain - float(read.split("%")[0]) - float(cost)) < 0.11, (name, read, cost)
    bad = subprocess.run([sys.executable, "scripts/style_costs.py", "--styles", "nosuch"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown style 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr
