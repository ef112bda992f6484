"""YAML read for rectiflow's definitions: line numbers for every key, and the limits.

A workflow, a ranking scheme, a calendar and the channels file are all YAML that a person
writes, so every refusal must name the file and line; ``compose_yaml`` refuses what no
definition needs (anchors, deep nesting, huge files) before a node is built, and ``_Located``
turns the nodes into plain data, remembering each key path's line. The plain data of a
workflow is also kept on disk as JSON, so a later process skips PyYAML altogether. Apart
from ``spec.py`` because the readers of the other files use it too, without the workflow
schema.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rectiflow.engine.errors import ValidationError

if TYPE_CHECKING:
    import yaml


# --- YAML with line numbers --------------------------------------------------------------


class _Located:
    """Plain Python data from YAML plus the line of every key path."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: dict[str, int] = {}

    def build(self, node: yaml.Node, path: str) -> Any:
        import yaml

        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                self.lines[child] = key_node.start_mark.line + 1
                if key in result:
                    raise self.error(child, f"key {key!r} given twice")
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        try:
            return _scalar(node)
        except (yaml.YAMLError, LookupError, ValueError, TypeError, ArithmeticError) as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise self.error(path, f"bad value {node.value!r}: {problem}") from None

    def line(self, path: str) -> int:
        while path and path not in self.lines:
            path = path.rsplit(".", 1)[0] if "." in path else path.rsplit("[", 1)[0]
        return self.lines.get(path, 1)

    def error(self, path: str, message: str) -> ValidationError:
        return ValidationError(
            f"{path}: {message}" if path else message,
            where=f"{self.filename}:{self.line(path)}",
            key=path,
        )


class LocatedChecks:
    """What every checker of a YAML file (a workflow, a ranking scheme) starts from: a
    refusal at a key path's line, and a mapping with none but the allowed keys."""

    loc: _Located

    def fail(self, path: str, message: str) -> ValidationError:
        return self.loc.error(path, message)

    def mapping(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "expected a mapping")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    f"{path}.{key}" if path else key,
                    f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                )
        return value


@functools.cache
def _scalars() -> Any:
    import yaml

    return yaml.SafeLoader("")


def _composer() -> type[Any]:
    # libyaml's parser when PyYAML was built with it: the nodes keep their marks, so the
    # lines of the errors are the same, and rectification.yaml composes in 0.4 ms, not 7 ms.
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[no-any-return]


#: The largest YAML file rectiflow reads (a workflow, a ranking scheme), and how deep its
#: mappings and lists may nest: checked before anything is built from it.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 50


def compose_yaml(text: str, filename: str) -> yaml.Node | None:
    """The YAML node tree of ``text``, refused (ValidationError naming the file and line) when
    it is over ``MAX_YAML_BYTES``, nests deeper than ``MAX_YAML_DEPTH`` or has anchors and
    aliases: an alias can expand ten lines into gigabytes (billion laughs), and a definition
    has no need of them. Checked on the parser's event stream, before a node is made."""
    import yaml

    size = len(text.encode("utf-8", "replace"))
    if size > MAX_YAML_BYTES:
        raise ValidationError(
            f"the file is {size:,} bytes: at most {MAX_YAML_BYTES:,}", where=f"{filename}:1"
        )
    loader = _composer()
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ValidationError(
                    "anchors and aliases (&name, *name) are not allowed: write the value out",
                    where=f"{filename}:{line}",
                )
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ValidationError(
                        f"nested more than {MAX_YAML_DEPTH} levels deep", where=f"{filename}:{line}"
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
        return yaml.compose(text, Loader=loader)  # type: ignore[no-any-return]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "nesting depth" in problem:  # PyYAML 6.0.4 and later stop deep nesting themselves
            raise ValidationError(
                f"nested more than {MAX_YAML_DEPTH} levels deep", where=f"{filename}:{line}"
            ) from None
        raise ValidationError(
            f"YAML does not parse: {problem}", where=f"{filename}:{line}"
        ) from None


def _scalar(node: yaml.Node) -> Any:
    # Resolve the scalar with SafeLoader's rules (ints, bools, null) without its object graph.
    return _scalars().construct_object(node, deep=True)


# --- the plain data of a definition, kept on disk ---------------------------------------------
# A command reads a registered definition back in every process: the YAML's plain data
# (what ``_Located`` builds: mappings, lists and scalars, and the line of each key path) is
# kept as JSON by the SHA-256 of the text, once the definition has validated, so the next
# process validates it again without importing PyYAML and composing the text. The validation
# itself (``_Parser``) always runs. RECTIFLOW_CACHE_DIR sets the folder ("" or "-": none).

_PLAIN_FORMAT = 1  # bump when what _Located builds from the same text changes


def _plain_cache(text: str) -> Path | None:
    folder = os.environ.get("RECTIFLOW_CACHE_DIR")
    if folder is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "rectiflow")
    if folder in ("", "-"):
        return None
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Path(folder) / f"workflow-{_PLAIN_FORMAT}-{digest}.json"


def _read_plain(path: Path | None) -> tuple[Any, dict[str, int]] | None:
    if path is None:
        return None
    try:
        data, lines = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    return (data, lines) if isinstance(lines, dict) else None


def _write_plain(path: Path | None, saved: str | None) -> None:
    if path is None or saved is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{os.getpid()}.part")
        part.write_text(saved, "utf-8")
        os.replace(part, path)  # whole or not at all, for a process reading it meanwhile
    except OSError:
        pass


def _as_json(data: Any, lines: dict[str, int]) -> str | None:
    """The plain data as JSON, if JSON gives it back exactly (else it is not kept)."""
    try:
        saved = json.dumps([data, lines], ensure_ascii=False)
    except (TypeError, ValueError):
        return None
    return saved if json.loads(saved) == [data, lines] else None
