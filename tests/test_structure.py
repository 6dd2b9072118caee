"""The package's shape: no import cycles, short functions, one error family, one command."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import crnn_captcha
from crnn_captcha import errors
from crnn_captcha.__main__ import COMMANDS, main

PACKAGE = Path(crnn_captcha.__file__).resolve().parent
MODULES = sorted(p for p in PACKAGE.glob("*.py"))


def package_imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports (``from . import x``, ``from .x import y``),
    at any depth of the file (imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crnn_captcha"):
            parts = node.module.split(".")
            found.add(parts[1] if len(parts) > 1 else "__init__")
    return found - {path.stem}


def test_no_import_cycles():
    graph = {p.stem: package_imports(p) & {m.stem for m in MODULES} for p in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 1:
            pytest.fail("import cycle: " + " -> ".join(trail[trail.index(node):] + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, trail + [node])
        state[node] = 2

    for name in graph:
        visit(name, [])
    assert not any("__init__" in deps for name, deps in graph.items() if name != "__main__"), graph


def test_no_function_over_80_lines():
    long = [f"{p.name}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in MODULES for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert not long, long


def test_every_error_is_a_captcha_error_and_exported():
    classes = [v for v in vars(errors).values()
               if isinstance(v, type) and issubclass(v, Exception) and not issubclass(v, Warning)]
    assert len(classes) >= 7
    for cls in classes:
        assert issubclass(cls, errors.CaptchaError), cls
        assert getattr(crnn_captcha, cls.__name__) is cls, cls
        assert cls.exit_code in (1, 2)
    assert crnn_captcha.CaptchaWarning is errors.CaptchaWarning


# ----- the one command ---------------------------------------------------------------------------
def run_command(*args: str):
    return subprocess.run([sys.executable, "-m", "crnn_captcha", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_one_command_version_help_and_unknown_command():
    version = run_command("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"crnn_captcha {crnn_captcha.__version__}"
    listing = run_command("--help")
    assert listing.returncode == 0
    assert all(c in listing.stdout for c in COMMANDS) and "python -m crnn_captcha" in listing.stdout
    unknown = run_command("reed", "x.png")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "unknown command 'reed'" in unknown.stderr
    assert run_command().returncode == 2  # nothing asked: the list of commands, as a usage error


@pytest.mark.parametrize("command", ["predict", "evaluate", "train", "export"])
def test_each_command_help_names_the_program_and_shows_defaults(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"], prog="crnn-captcha")
    out = capsys.readouterr().out
    assert stop.value.code == 0
    assert out.startswith(f"usage: crnn-captcha {command}") and "(default" in out


@pytest.mark.slow
def test_one_command_runs_a_command_and_passes_its_exit_code(tmp_path):
    from conftest import CAPTCHA_V2  # real image where present, else a generated one

    image = CAPTCHA_V2 / "6mege.png"
    if not image.exists():
        from synth import render

        image = tmp_path / "x.png"
        render("6mege", seed=0).save(image)
    read = run_command("predict", str(image))
    assert read.returncode == 0 and len(read.stdout.strip()) > 0
    if CAPTCHA_V2.exists():
        assert read.stdout.strip() == "6mege"
    missing = run_command("predict", str(tmp_path / "none.png"))
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0 and "none.png" in missing.stderr
