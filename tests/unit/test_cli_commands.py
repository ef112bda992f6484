"""The command line loads only the modules its command needs: each first word's modules
(``rectiflow.cli._NEEDS``) define the whole of that command, as the full tree has it."""

from __future__ import annotations

from typing import Any

from rectiflow import cli


def _tree(command: Any) -> Any:
    """A command's subcommands, recursively, by name (a leaf command: None)."""
    if not hasattr(command, "commands"):
        return None
    return {name: _tree(sub) for name, sub in command.commands.items()}


def test_commands__each_word_loads_what_defines_it() -> None:
    everything = cli._commands(cli._MODULES)
    assert set(cli._NEEDS) == set(everything)
    for word, modules in cli._NEEDS.items():
        assert _tree(cli._commands(modules)[word]) == _tree(everything[word]), word
