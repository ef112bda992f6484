"""Shared fixtures: a throwaway PostgreSQL server for the session, a fresh database per test.

The server is started with ``initdb`` + ``pg_ctl`` in a temporary folder on a free loopback
port (as the ``postgres`` user when the tests run as root, since PostgreSQL refuses to run
as root). Where no PostgreSQL binaries exist the tests that need it are skipped, unless
RECTIFLOW_REQUIRE_POSTGRES=1 (set by CI), which turns the skip into a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

# The one RECTIFLOW_* variable the tests read rather than the code under test.
KEPT_VARIABLES = {"RECTIFLOW_REQUIRE_POSTGRES"}


@pytest.fixture(scope="session", autouse=True)
def _no_rectiflow_environment(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Run every test, and the session fixtures, as if no RECTIFLOW_* variable were set: a
    developer's RECTIFLOW_TZ or RECTIFLOW_DB must not change what a test sees. Session
    scope, so that session fixtures (a ledger template built through the CLI) see it too;
    a test that needs one sets it with ``monkeypatch.setenv``. The one exception: the
    workflow cache goes to a folder of the session, not to the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("RECTIFLOW_") and name not in KEPT_VARIABLES:
                patch.delenv(name)
        patch.setenv("RECTIFLOW_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def _find_bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent

    # Debian/Ubuntu keep the server binaries off PATH; take the newest version.
    def version(pg_ctl: str) -> int:
        name = Path(pg_ctl).parent.parent.name
        return int(name) if name.isdigit() else 0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version)
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    port: int
    root: Path

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("RECTIFLOW_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (RECTIFLOW_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"no PostgreSQL: {reason}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        _unavailable("initdb/pg_ctl not on PATH nor under /usr/lib/postgresql/*/bin")
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no postgres user to run the server as")
        prefix = ["runuser", "-u", "postgres", "--"]

    root = Path(tempfile.mkdtemp(prefix="rectiflow-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if owner is not None:
        for path in (root, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def run(*args: str) -> None:
        done = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}{tail}")

    port = _free_port()
    options = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    started = False
    try:
        run(
            str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
            str(root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        started = True
        yield PostgresServer(port, root)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A URL to a fresh, empty database on the session's server, dropped afterwards."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
