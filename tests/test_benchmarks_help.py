"""Every measuring script under benchmarks/ answers ``--help`` as benchmarks/README.md runs it
(``python benchmarks/<topic>/<name>.py`` from the repo root): exit 0, a usage line naming the script, and no
measurement, model or SDK loaded before the arguments are parsed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    path for path in (ROOT / "benchmarks").glob("*/*.py") if not path.name.startswith("_")
)  # _name.py: a helper module
#: What a script may import only after parsing its arguments: the SDK, the trainer, and the heavy libraries.
HEAVY = {"guardsdk", "guardsdk_trainer", "torch", "transformers", "llama_cpp", "numpy", "httpx", "sklearn", "trl"}
#: ``python -c IMPORTED_BY_HELP SCRIPT MODULE...``: runs the script's ``--help`` and prints which of the top-level
#: modules named after it were imported.
IMPORTED_BY_HELP = """
import runpy, sys
path, watched = sys.argv[1], set(sys.argv[2:])
sys.argv = [path, "--help"]
try:
    runpy.run_path(path, run_name="__main__")
except SystemExit:
    pass
print(sorted({name.split(".")[0] for name in sys.modules} & watched))
"""


def _id(path: Path) -> str:
    return path.relative_to(ROOT / "benchmarks").as_posix()


def test_the_measuring_scripts_are_found():
    assert len(SCRIPTS) >= 20, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=_id)
def test_help_exits_0_and_names_the_script(script: Path):
    done = subprocess.run(
        [sys.executable, str(script.relative_to(ROOT)), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {script.name}"), done.stdout
    description = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
    assert description and description.split()[0] in done.stdout  # the docstring describes it


@pytest.mark.parametrize("script", SCRIPTS, ids=_id)
def test_help_imports_nothing_heavy(script: Path):
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED_BY_HELP, str(script), *sorted(HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
