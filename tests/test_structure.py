"""The package's shape: rooms that import only the rooms below them, commands that nothing imports,
no import cycles, short functions and modules, one error family, one command."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import crnn_captcha
from crnn_captcha import errors
from crnn_captcha.__main__ import COMMANDS, main

PACKAGE = Path(crnn_captcha.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))
#: The commands: parse, build a config, call the library, map errors. Nothing below them imports them.
COMMAND_LAYER = {"cli", "__main__", *(module for module, _ in COMMANDS.values())}
#: What each room of the library may import, besides itself and the package's base modules.
BASE = {"errors", "files", "_version"}
ROOMS = {
    "read": set(),
    "synthetic": set(),
    "data": {"read"},
    "service": {"read"},
    "labelling": {"read", "data"},
    "training": {"read", "data", "synthetic"},
}
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 500


def name_of(path: Path, root: Path = PACKAGE) -> str:
    """``read.ctc`` for read/ctc.py under ``root``; ``read`` for its __init__.py."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def import_graph(root: Path = PACKAGE, top: str = "crnn_captcha") -> dict[str, set[str]]:
    """Each module of the package under ``root`` -> the package's modules it imports, at any depth
    of the file (imports inside functions count too)."""
    files = sorted(root.rglob("*.py"))
    names = {name_of(p, root) for p in files}
    graph = {}
    for path in files:
        here = name_of(path, root).split(".")
        package = here if path.name == "__init__.py" else here[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif (node.module or "").startswith(top):
                base = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:  # ``from . import cli`` imports a module; ``from .x import y`` imports x
                candidate = ".".join(base + [alias.name])
                found.add(candidate if candidate in names else ".".join(base) or "__init__")
        graph[name_of(path, root)] = (found & names) - {name_of(path, root)}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, or []. A room's __init__ importing its own modules is not one."""
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str]:
        if state.get(node) == 1:
            return trail[trail.index(node):] + [node]
        if state.get(node) == 2:
            return []
        state[node] = 1
        for nxt in sorted(graph[node] - {node.split(".")[0]}):
            found = visit(nxt, trail + [node])
            if found:
                return found
        state[node] = 2
        return []

    return next((c for c in (visit(name, []) for name in graph) if c), [])


def layering_faults(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a command from below the commands, of the package's __init__, or of a room that
    is not below the importing one."""
    faults = [f"{name} imports the command {dep}" for name, deps in graph.items() if name not in COMMAND_LAYER
              for dep in sorted(deps & COMMAND_LAYER)]
    faults += [f"{name} imports the package's __init__" for name, deps in graph.items()
               if name != "__main__" and "__init__" in deps]
    for name, deps in graph.items():
        room = name.split(".")[0]
        if room in ROOMS:
            allowed = {room} | ROOMS[room] | BASE
            faults += [f"{name} imports {dep}" for dep in sorted(deps - COMMAND_LAYER)
                       if dep.split(".")[0] not in allowed]
    return faults


def test_no_import_cycles_and_each_room_imports_only_the_rooms_below_it():
    graph = import_graph()
    assert not cycle(graph), " -> ".join(cycle(graph))
    assert not layering_faults(graph), layering_faults(graph)
    assert {n.split(".")[0] for n in graph} <= set(ROOMS) | COMMAND_LAYER | BASE | {"__init__"}, sorted(graph)
    assert "read.charset" in graph["read.ctc"] and {"cli", "training.loop"} <= graph["train"]


def test_the_checks_find_a_command_import_a_room_above_and_a_cycle(tmp_path):
    files = {"__init__.py": "", "cli.py": "", "errors.py": "", "read/__init__.py": "",
             "read/a.py": "from .. import cli\nfrom ..errors import E\n",
             "read/b.py": "def f():\n    from ..training.c import g\n",
             "training/__init__.py": "from .c import g\n",
             "training/c.py": "from crnn_captcha.training.d import h\n", "training/d.py": "from .c import g\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["read.a"] == {"cli", "errors"} and graph["training"] == {"training.c"}
    assert layering_faults(graph) == ["read.a imports the command cli", "read.b imports training.c"]
    assert cycle(graph) == ["training.c", "training.d", "training.c"]


def test_no_function_over_60_lines_and_no_module_over_500():
    long = [f"{p.relative_to(PACKAGE)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in MODULES for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long
    big = [f"{p.relative_to(PACKAGE)} ({n} lines)" for p in MODULES
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not big, big


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


def test_training_names_load_only_when_used():
    """``import crnn_captcha`` loads the reading room alone; TrainConfig, fit and PretrainConfig come
    from the training room the first time they are asked for."""
    code = ("import sys, crnn_captcha as c; before = 'crnn_captcha.training' in sys.modules; "
            "from crnn_captcha import TrainConfig, fit, PretrainConfig; "
            "from crnn_captcha.training import loop, pretraining; "
            "print(before, fit is loop.fit, PretrainConfig is pretraining.PretrainConfig, TrainConfig.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True", "True", "TrainConfig"], done.stderr[-2000:]
