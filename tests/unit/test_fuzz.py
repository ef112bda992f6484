"""Fuzzing the two ways bad input comes in: workflow files and command lines (issue 14,
section 4). Whatever comes in, the answer is a result or a one-line refusal with a documented
exit code: never exit 1, never a traceback, and a refusal leaves the database as it was.

Bounded (``max_examples``, no deadline) so that CI stays fast; run with
``--hypothesis-seed`` to repeat a failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rectiflow.cli import main
from rectiflow.engine.errors import ValidationError
from rectiflow.engine.reports import parse_scheme
from rectiflow.engine.spec import parse_workflow

SHIPPED = resources.files("rectiflow.workflows").joinpath("rectification.yaml").read_text("utf-8")
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# --- workflow files -------------------------------------------------------------------------

YAML_BITS = [
    ":", ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!!int ", "!!binary ",
    "!!python/object:os.system ", "? ", "|", ">", "'", '"', "#", "\t", "\n", "  ", "%YAML 1.1\n",
    "---\n", "...\n", "~", "null", "true", "0x1F", "1e999", "-1", "99999999999999999999",
    "2026-13-45", "5wd", "-3wd", "0s", "10000000000d", "identify", "rectify", "closed",
    "owner", "supervisor", "\x00", "\x1b[31m", "\u202e", "问题", "\ufeff", "<<: *a",
]  # fmt: skip
yamlish = st.lists(st.one_of(st.sampled_from(YAML_BITS), st.text(max_size=8)), max_size=40).map(
    "".join
)


@st.composite
def mutated_workflow(draw: st.DrawFn) -> str:
    """The shipped workflow with a few edits: lines dropped, doubled or moved, a span of
    text replaced by YAML syntax or noise."""
    lines = SHIPPED.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "double", "move", "replace", "indent"]))
        if action == "drop":
            del lines[at]
        elif action == "double":
            lines.insert(at, lines[at])
        elif action == "move":
            lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(at))
        elif action == "indent":
            lines[at] = draw(st.sampled_from(["", " ", "  ", "    ", "\t"])) + lines[at].lstrip()
        else:
            line = lines[at]
            start = draw(st.integers(0, len(line)))
            end = draw(st.integers(start, len(line)))
            lines[at] = line[:start] + draw(yamlish) + line[end:]
    return "".join(lines)


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECTIFLOW_CACHE_DIR", "-")


def _parses_or_refuses(parse: Callable[[str, str], object], text: str) -> None:
    refusal = None
    try:
        parse(text, "fuzz.yaml")
    except ValidationError as exc:
        refusal = str(exc)
    assert refusal is None or refusal.startswith("fuzz.yaml:"), refusal  # the file and line


@FUZZ
@given(text=st.one_of(yamlish, mutated_workflow()))
def test_fuzz__a_workflow_file_parses_or_is_refused_naming_the_file(text: str) -> None:
    _parses_or_refuses(parse_workflow, text)


@FUZZ
@given(text=yamlish)
def test_fuzz__a_ranking_scheme_parses_or_is_refused_naming_the_file(text: str) -> None:
    _parses_or_refuses(parse_scheme, text)


# --- command lines --------------------------------------------------------------------------

DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 9}  # 8 is `health` alone, 1 is a bug
T0 = "2026-03-02T10:00:00+08:00"

ARG_BITS = [
    "1", "2", "0", "-1", "99", str(2**63), str(2**64), "1e3", "one", "", " ", "HRB", "hrb",
    "XX", "张三", "李强", "赵敏", "reporter", "owner", "supervisor", "confirm", "dismiss",
    "submit", "accept", "identify", "rectify", "bogus", "high", "low", "extreme", "red",
    "2026-03-05", "2026-02-30", "0001-01-01", "9999-12-31", "2026-03-05T10:00", "soon",
    "--title", "--text", "--actor", "--unit", "--due", "--state", "--severity", "--json",
    "--comment", "--expect-version", "--limit", "--offset", "--light", "--opened-since",
    "--parent", "--role", "--evidence", "/dev/zero", "/", "--now", "--db", "-h",
    "\x1b[2J", "a\nb", "\x00", "\udcff", "\u202e", "问" * 501, "=1+1",
]  # fmt: skip
COMMANDS = [
    ("case", "open"), ("case", "list"), ("case", "show"), ("case", "fire"), ("case", "note"),
    ("case", "pause"), ("case", "edit"), ("case", "triggers"), ("measure", "add"),
    ("measure", "done"), ("measure", "verify-evidence"), ("unit", "add"), ("actor", "add"),
    ("calendar", "show"), ("audit", "verify"), ("workflow", "show"), ("report", "progress"),
]  # fmt: skip
argv_tail = st.lists(st.one_of(st.sampled_from(ARG_BITS), st.text(max_size=6)), max_size=8)


def _digest(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [(t, sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"')))) for t in tables]
    conn.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            return (exc.code if isinstance(exc.code, int) else 0), err.getvalue()
    raise AssertionError("main() returned instead of exiting")


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("fuzz") / "ledger.db"
    base = ["--db", str(db), "--now", T0]
    for argv in (
        ["init"],
        ["unit", "add", "HLJ", "黑龙江省"],
        ["unit", "add", "HRB", "哈尔滨市", "--parent", "HLJ"],
        ["actor", "add", "赵敏", "--role", "supervisor", "--role", "reporter"],
        ["actor", "add", "李强", "--role", "owner", "--unit", "HRB"],
        ["case", "open", "--unit", "HRB", "--title", "审批效率低", "--actor", "赵敏"],
        ["measure", "add", "1", "--text", "梳理事项", "--actor", "李强"],
    ):  # fmt: skip
        assert _run(base + argv)[0] == 0, argv
    return db


@FUZZ
@given(command=st.sampled_from(COMMANDS), tail=argv_tail)
def test_fuzz__a_command_line_is_answered_or_refused_cleanly(
    ledger: Path, command: tuple[str, ...], tail: list[str]
) -> None:
    os.environ.pop("RECTIFLOW_DB", None)
    argv = ["--db", str(ledger), "--now", T0, *command, *tail]
    before = _digest(ledger)
    code, err = _run(argv)
    assert code in DOCUMENTED, (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code != 0:
        lines = err.strip().splitlines()
        assert lines, (argv, code)
        assert lines[-1].startswith("error: "), (argv, err)
        assert _digest(ledger) == before, (argv, err)
