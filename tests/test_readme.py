"""The README is the front door: its library example must run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme__library_example_runs_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.S)
    assert blocks, "the README has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0], "utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "identify 2026-10-10 23:59:59+08:00"
    assert lines[1] == "cannot submit case 1 in state rectify: measure 1 is not done"
    assert lines[2] == (
        "closed ['open', 'confirm', 'measure_added', 'approve_plan', 'measure_done', 'submit', "
        "'accept']"
    )
    assert (tmp_path / "ledger.db").exists()


def test_readme__test_command_is_what_ci_runs() -> None:
    ci = (README.parent / ".ci" / "run").read_text("utf-8")
    command = 'python -m pip install -e ".[test]" && python -m pytest'
    assert command in README.read_text("utf-8")
    assert command in ci
