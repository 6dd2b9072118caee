"""The README and the docs say only what works: every command in their code blocks names a real
program and options it accepts, and the docs site builds without a broken link or docstring."""
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crnn_captcha.__main__ import COMMANDS
from conftest import ROOT

PAGES = [ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Scripts whose command lines are checked with their own parsers (the others only must exist).
SCRIPT_MODULES = {"split_data.py": "crnn_captcha.split", "make_glyphs.py": "crnn_captcha.glyphs"}


def shell_lines(page: Path) -> list[str]:
    """Each command of the page's bash code blocks, comments dropped, `&&` chains split."""
    text = page.read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip().rstrip("&").strip()  # comments; a trailing & (background)
            if line and not line.startswith("#"):
                lines += [part.strip() for part in line.split("&&")]
    return lines


def package_command(words: list[str]) -> tuple[str, list[str]] | None:
    """(module, arguments) of a crnn_captcha command line, or None for another program."""
    while words and re.match(r"^[A-Z_]+=", words[0]):  # ENV=value prefixes
        words = words[1:]
    if words[:1] == ["torchrun"]:
        words = words[words.index("-m"):] if "-m" in words else []
        words = ["python", *words]
    if words[:2] == ["python", "-m"] and len(words) > 2 and words[2].startswith("crnn_captcha"):
        if words[2] == "crnn_captcha":
            return f"crnn_captcha.{COMMANDS[words[3]][0]}", words[4:]
        return words[2], words[3:]
    if words[:1] == ["crnn-captcha"]:
        return f"crnn_captcha.{COMMANDS[words[1]][0]}", words[2:]
    if words[:1] == ["python"] and len(words) > 1 and words[1].startswith("scripts/"):
        assert (ROOT / words[1]).exists(), words[1]
        name = Path(words[1]).name
        return (SCRIPT_MODULES[name], words[2:]) if name in SCRIPT_MODULES else None
    if words[:1] == ["bash"] and len(words) > 1:
        assert (ROOT / words[1]).exists(), words[1]
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_parses(page):
    if not page.exists():
        pytest.skip(f"{page} is not there")
    checked = 0
    for line in shell_lines(page):
        if "[" in line and "]" in line and not line.startswith("pip"):  # an optional part in brackets
            line = re.sub(r"\s\[[^\]]*\]", "", line)
        found = package_command(shlex.split(line))
        if found is None:
            continue
        module, argv = found
        parser = importlib.import_module(module).build_parser(None)
        try:
            parser.parse_args(argv)
        except SystemExit as e:
            pytest.fail(f"{page.name}: `{line}` is not accepted (exit {e.code})")
        checked += 1
    if page == ROOT / "README.md":
        assert checked >= 10, checked


def test_readme_opens_with_the_two_setup_commands():
    lines = shell_lines(ROOT / "README.md")[:4]
    assert any(line.startswith("python -m pip install -e .") for line in lines)
    assert any("python -m crnn_captcha.predict" in line for line in lines)
    assert any("python -m pytest" in line for line in lines)


def test_docs_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e \".[docs]\")")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed (pip install -e \".[docs]\")")
    mkdocs = shutil.which("mkdocs")
    cmd = [mkdocs] if mkdocs else [sys.executable, "-m", "mkdocs"]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run([*cmd, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()


def test_readme_first_command_reads_a_sample_the_package_ships():
    """It works on any machine: the image is in the package, made by scripts/make_sample.py, and
    the shipped reader reads it as its name."""
    first = next(line for line in shell_lines(ROOT / "README.md") if "crnn_captcha.predict" in line)
    image = ROOT / shlex.split(first)[-1]
    assert image.is_relative_to(ROOT / "crnn_captcha") and image.exists(), image
    done = subprocess.run([sys.executable, "-m", "crnn_captcha.predict", str(image)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == image.stem, done.stderr
