"""The chaos suite: the daemon and the embedded scheduler under CPU burners, a forced skip,
clock jumps, a frozen PostgreSQL, SIGSTOP and kill -9. Reduced to seconds for CI."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The daemon helpers of the acceptance suite (a fast workflow, the daemon subprocess).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "acceptance"))

from chaos_support import ChaosDaemon


@pytest.fixture
def chaos_daemons(tmp_path: Path) -> Iterator[Callable[..., ChaosDaemon]]:
    """Start daemons (``rectiflow daemon`` or a wrapper of it); kill what still runs after."""
    started: list[ChaosDaemon] = []

    def start(url: str, *args: str, **kwargs: object) -> ChaosDaemon:
        daemon = ChaosDaemon(url, tmp_path / f"daemon{len(started)}.log", *args, **kwargs)  # type: ignore[arg-type]
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
