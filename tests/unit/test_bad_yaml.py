"""Hostile YAML is refused before anything is built from it: alias bombs, deep nesting, huge
files, bad tags (issue 14, section 3). Each refusal is a ValidationError naming file:line."""

from __future__ import annotations

import resource
from importlib import resources
from pathlib import Path

import pytest

from rectiflow.engine.calendar import parse_calendar_file
from rectiflow.engine.errors import ValidationError
from rectiflow.engine.reports import parse_scheme
from rectiflow.engine.spec import parse_workflow
from rectiflow.engine.yaml_source import MAX_YAML_BYTES, MAX_YAML_DEPTH

SHIPPED = resources.files("rectiflow.workflows").joinpath("rectification.yaml").read_text("utf-8")

# Ten lines, 9**9 (387 million) strings once the aliases are expanded.
BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

PARSERS = {
    "workflow": parse_workflow,
    "scheme": parse_scheme,
    "calendar": lambda text, name: parse_calendar_file(text, name.removesuffix(".yaml") + ".yaml"),
}


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECTIFLOW_CACHE_DIR", "-")


@pytest.fixture
def memory_cap() -> object:
    """Fail with MemoryError rather than swap if a parser expands what it should refuse."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("kind", PARSERS)
@pytest.mark.usefixtures("memory_cap")
def test_alias_bomb__refused_at_its_first_anchor(kind: str) -> None:
    with pytest.raises(ValidationError) as refused:
        PARSERS[kind](BILLION_LAUGHS, "bomb")
    assert str(refused.value).startswith("bomb")
    assert ":1: anchors and aliases" in str(refused.value)


@pytest.mark.parametrize("kind", PARSERS)
def test_any_alias__refused_with_its_line(kind: str) -> None:
    text = SHIPPED.replace("roles: [owner]", "roles: &who [owner]", 1)
    text = text.replace("roles: [verifier]", "roles: *who", 1)
    assert "&who" in text
    with pytest.raises(ValidationError, match=r"^x\.yaml:\d+: anchors and aliases"):
        PARSERS[kind](text, "x.yaml")


@pytest.mark.parametrize("kind", PARSERS)
@pytest.mark.parametrize("opening", ["[", "{a: ", "- "])
def test_deep_nesting__refused_without_recursion(kind: str, opening: str) -> None:
    depth = 20_000 if opening != "- " else 1_000  # indented: 1,000 levels make 1 MB
    if opening == "- ":
        text = "".join("  " * i + "-\n" for i in range(depth))
    else:
        text = opening * depth + ("]" if opening == "[" else "}") * depth
    with pytest.raises(ValidationError, match=f"nested more than {MAX_YAML_DEPTH} levels"):
        PARSERS[kind](text, "deep")


def test_nesting_at_the_limit__parses_to_the_usual_errors() -> None:
    inner = MAX_YAML_DEPTH - 1  # under the top-level mapping
    text = "name: " + "[" * inner + "]" * inner
    with pytest.raises(ValidationError, match="name: "):
        parse_workflow(text, "ok.yaml")


@pytest.mark.parametrize("kind", PARSERS)
def test_oversized_text__refused_before_parsing(kind: str) -> None:
    text = "# " + "x" * MAX_YAML_BYTES + "\nname: n\n"
    with pytest.raises(ValidationError, match="at most 1,048,576"):
        PARSERS[kind](text, "big")


@pytest.mark.parametrize(
    "value", ["!!binary zz", "!!int abc", "!!float x", "!!timestamp 2026-13-45", "!!bool maybe"]
)
def test_bad_tags__are_validation_errors_with_a_line(value: str) -> None:
    with pytest.raises(ValidationError, match=r"^t\.yaml:3: "):
        parse_workflow(f"# a\n\nname: {value}\n", "t.yaml")


def test_cli__workflow_files_too_big_fifos_and_folders_are_usage_errors(tmp_path: Path) -> None:
    import os

    from rectiflow.cli.common import MAX_TEXT_FILE, read_text
    from rectiflow.engine.errors import UsageError

    big = tmp_path / "big.yaml"
    with big.open("wb") as file:
        file.truncate(MAX_TEXT_FILE * 1000)  # sparse: a GB on paper, nothing on disk
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path, message in ((big, "larger than"), (fifo, "not a regular file"), (tmp_path, "not a")):
        with pytest.raises(UsageError, match=message):
            read_text(path, "workflow file")
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffname: x\n".encode())
    assert read_text(bom, "workflow file") == "name: x\n"
