"""Webhook deliveries per second: the Dispatcher against a raw loop doing the same work.

A ledger (the shipped workflow, a unit tree, a supervisor and one owner per unit, with
contacts) gets ``--n`` notifications in bulk (half ``warn`` to the case's owner, half
``supervise`` to the supervisor), and ``Dispatcher.expand`` makes them into as many
pending deliveries on one webhook channel; all of that is untimed. The database is then
copied, so both sides start from the same pending deliveries:

- engine: ``Dispatcher.run_once(now)`` (claims of ``--batch``, sends on the channel's
  ``httpx`` keep-alive client, records the attempts);
- raw: a hand-written loop on a bare DB-API connection: claim a batch under the lease as
  the store does (BEGIN IMMEDIATE on SQLite, FOR UPDATE SKIP LOCKED on PostgreSQL: SELECT
  the due ids, UPDATE their lease, SELECT them joined with their notification and case),
  POST the same JSON body with the same HMAC signature headers on one ``httpx`` keep-alive
  client, then record the attempts (``executemany`` INSERT of the attempts and UPDATE of
  the deliveries, the notifications all of whose deliveries are sent marked delivered).

The two take turns batch by batch (the raw loop runs one batch each time the Dispatcher
claims; its time is not counted as the Engine's), both posting to one local webhook
server: asyncio (standard library), HTTP/1.1 keep-alive, in its own process, answering
200 at once after checking each signature. It counts what each side sent (requests, bad
signatures, distinct keys, body bytes: the two must match) and its CPU is reported, with
the rate of the same requests without any database, to show it is not the bottleneck.

    python bench/delivery.py [--n 20000] [--db URL] [--batch 100]

The last line is ``ratio <engine/raw>``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

# Run as a script: the repository root goes on sys.path (for `bench.common`).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from loguru import logger  # noqa: E402

from bench.common import (  # noqa: E402
    TZ,
    Raw,
    RawCalendar,
    copy_database,
    drop_copy,
    fmt_rate,
    is_postgres,
    scratch_database,
    seed,
)
from rectiflow import Engine  # noqa: E402
from rectiflow.engine import deadlines, history  # noqa: E402
from rectiflow.engine.durations import Duration, Unit  # noqa: E402
from rectiflow.notify.config import NotifyConfig, load_config  # noqa: E402
from rectiflow.notify.dispatcher import Dispatcher  # noqa: E402
from rectiflow.store.tables import (  # noqa: E402
    case_t,
    delivery_attempt_t,
    delivery_t,
    history_t,
    notification_t,
)

BATCH = 100  # the Dispatcher's default batch size
LEASE = dt.timedelta(minutes=5)  # the Dispatcher's default lease
SECRET_ENV = "RECTIFLOW_BENCH_WEBHOOK_SECRET"
SECRET = "whsec-bench-0123456789abcdef"
NOTES = (("warn", "owner"), ("supervise", "supervisor"))  # per case
REMIND_OFFSET = -3  # the shipped ladder's first level, in working days before the deadline


# --- the webhook server (a child process) ---------------------------------------------------


class _Hook(asyncio.Protocol):
    """HTTP/1.1 keep-alive, enough of it for httpx: a request head, a Content-Length body;
    POST checks the signature and counts, per path; GET /stats answers the counts."""

    stats: ClassVar[dict[str, dict[str, Any]]] = {}
    secret = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ", 2)[:2]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            stop = end + 4 + int(headers.get("content-length", "0"))
            if len(self.buffer) < stop:
                return
            body = bytes(self.buffer[end + 4 : stop])
            del self.buffer[:stop]
            self.transport.write(self.answer(method, path, headers, body))

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        if method == "GET" and path == "/stats":
            data = json.dumps({
                p: {k: (len(v) if isinstance(v, set) else v) for k, v in s.items()}
                for p, s in self.stats.items()
            }).encode()  # fmt: skip
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            )
            return head.encode() + data
        s = self.stats.setdefault(path, {"requests": 0, "bad": 0, "bytes": 0, "keys": set()})
        timestamp = headers.get("x-rectiflow-timestamp", "")
        mac = hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256)
        s["requests"] += 1
        s["bytes"] += len(body)
        s["keys"].add(headers.get("x-rectiflow-delivery"))
        if not hmac.compare_digest(
            "sha256=" + mac.hexdigest(), headers.get("x-rectiflow-signature", "")
        ):
            s["bad"] += 1
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def serve() -> None:
    """Run in the child: listen on a free port of 127.0.0.1, print it, serve until killed."""
    _Hook.secret = os.environ[SECRET_ENV].encode()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Hook, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class WebhookServer:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True,
            env={**os.environ, SECRET_ENV: SECRET},
        )  # fmt: skip
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.base = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = httpx.get(f"{self.base}/stats").json()
        return result

    def cpu_seconds(self) -> float:
        """User and system CPU of the server process (Linux /proc; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# --- the outbox -----------------------------------------------------------------------------


def config_for(url: str) -> NotifyConfig:
    text = (
        f"channels:\n  - name: ops\n    type: webhook\n    url: {url}\n"
        f"    secret: env:{SECRET_ENV}\n"
    )
    return load_config(text, "bench.yaml", {SECRET_ENV: SECRET})


def build(url: str, count: int, now: dt.datetime, hook: str) -> None:
    """The ledger, ``count`` notifications (bulk inserts) and their pending deliveries
    (``Dispatcher.expand``); untimed."""
    with Engine(url) as engine:
        units = seed(engine)
        engine.set_contacts("sup", email="sup@example.test", mobile="13800000000")
        for i, unit in enumerate(units):
            engine.add_actor(f"owner-{unit}", ["owner"], [unit])
            engine.set_contacts(
                f"owner-{unit}", email=f"{unit}@example.test", mobile=f"1390000{i:04d}"
            )
        spec = engine.workflow("rectification")
        rules = engine.rules
        store: Any = engine.store
        cases_needed = (count + len(NOTES) - 1) // len(NOTES)
        chunk = 5_000
        written = 0
        for first in range(1, cases_needed + 1, chunk):
            cases, entries, notes = [], [], []
            for case_id in range(first, min(first + chunk, cases_needed + 1)):
                days_late = case_id % 10 - 5  # -5 .. 4 working days past the deadline
                due_at = rules.add(now, Duration(-days_late, Unit.WORKDAYS))[0]
                entered = due_at - dt.timedelta(days=60)
                entry = history.make_entry(
                    case_id, 1, "open", None, "rectify", "sup", entered, None, history.GENESIS
                )
                cases.append({
                    "id": case_id, "workflow": spec.name, "workflow_version": spec.version,
                    "unit": units[case_id % len(units)], "title": f"整改问题 {case_id}",
                    "description": None, "category": None, "source": None,
                    "severity": "medium", "state": "rectify", "version": 1,
                    "created_at": entered, "stage_entered_at": entered, "due_at": due_at,
                    "due_provisional": False, "due": None, "visit": 1, "next_level": 0,
                    "next_escalation_at": deadlines.next_escalation(rules, spec, due_at, 0),
                    "paused_at": None, "pause_credit": 0, "history_seq": 1,
                    "last_hash": entry.hash,
                })  # fmt: skip
                entries.append({
                    "case_id": case_id, "seq": 1, "trigger": "open", "source": None,
                    "dest": "rectify", "actor": "sup", "at": entered, "comment": None,
                    "prev_hash": history.GENESIS, "hash": entry.hash,
                })  # fmt: skip
                for level, role in NOTES:
                    if written < count:
                        written += 1
                        notes.append({
                            "case_id": case_id, "kind": "escalation", "level": level,
                            "role": role, "created_at": now - dt.timedelta(minutes=1),
                            "key": f"esc:{case_id}:1:{level}:{role}",
                            "delivered_at": None, "expanded_at": None,
                        })  # fmt: skip
            with store._write() as conn:
                conn.execute(case_t.insert(), cases)
                conn.execute(history_t.insert(), entries)
                conn.execute(notification_t.insert(), notes)
        if is_postgres(url):
            with store._write() as conn:
                conn.exec_driver_sql("SELECT setval('rcase_id_seq', (SELECT max(id) FROM rcase))")
        dispatcher = Dispatcher(engine, config_for(hook))
        try:
            made = dispatcher.expand(now)
        finally:
            dispatcher.close()
        if made != count:
            raise SystemExit(f"expand made {made} deliveries of {count} notifications")


def outcome(url: str) -> tuple[int, int, int, int]:
    """(deliveries sent, sent once, attempts, notifications delivered): equal afterwards."""
    engine = sa.create_engine(url)
    d = delivery_t.c
    try:
        with engine.connect() as conn:

            def count(stmt: Any) -> int:
                return int(conn.execute(stmt).scalar_one())

            return (
                count(sa.select(sa.func.count()).where(d.status == "sent")),
                count(sa.select(sa.func.count()).where(d.attempts == 1, d.claimed_until.is_(None))),
                count(sa.select(sa.func.count()).select_from(delivery_attempt_t)),
                count(sa.select(sa.func.count()).where(notification_t.c.delivered_at.is_not(None))),
            )
    finally:
        engine.dispose()


# --- the raw loop ---------------------------------------------------------------------------

DUE = (
    "SELECT id FROM delivery WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ? "
    "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY channel, recipient, id LIMIT ?"
)
LEASE_SQL = "UPDATE delivery SET claimed_until = ? WHERE id IN ({ids})"
CLAIMED = (
    "SELECT d.id, d.notification_id, d.recipient, d.role, d.key, d.attempts, n.kind, n.level, "
    "c.id, c.title, c.unit, c.state, c.due_at, c.paused_at "
    "FROM delivery d JOIN notification n ON n.id = d.notification_id "
    "JOIN rcase c ON c.id = n.case_id "
    "WHERE d.id IN ({ids}) ORDER BY d.channel, d.recipient, d.id"
)
INSERT_ATTEMPT = (
    "INSERT INTO delivery_attempt (delivery_id, at, outcome, code, detail) VALUES (?, ?, ?, ?, ?)"
)
UPDATE_DELIVERY = (
    "UPDATE delivery SET status = ?, attempts = attempts + 1, claimed_until = NULL, "
    "last_code = ?, last_error = ?, sent_at = ?, next_attempt_at = ? WHERE id = ?"
)
DELIVERED = (
    "UPDATE notification SET delivered_at = ? WHERE delivered_at IS NULL "
    "AND id IN (SELECT notification_id FROM delivery WHERE id IN ({ids})) "
    "AND NOT EXISTS (SELECT 1 FROM delivery d "
    "WHERE d.notification_id = notification.id AND d.status <> 'sent')"
)


class RawDelivery:
    """The delivery loop by hand, one batch per call of ``batch``."""

    def __init__(self, url: str, hook: str, now: dt.datetime, batch: int) -> None:
        self.db, self.hook, self.now, self.size = Raw(url), hook, now, batch
        self.due = self.db.sql(DUE) + (" FOR UPDATE SKIP LOCKED" if self.db.postgres else "")
        self.client = httpx.Client(
            timeout=10.0, follow_redirects=False, headers={"User-Agent": "rectiflow"}
        )
        self.secret = SECRET.encode()
        self.calendar = RawCalendar()
        self.tz = ZoneInfo(TZ)
        self.sent = 0
        self.seconds = 0.0
        self.done = False

    def light(self, due_at: dt.datetime | None, paused: bool) -> str | None:
        """The shipped workflow's light for an open case (rectify is not final)."""
        if paused:
            return None
        if due_at is None:
            return None
        if self.now > due_at:
            return "red"
        if self.now >= self.calendar.add_workdays(due_at, REMIND_OFFSET)[0]:
            return "yellow"
        return "green"

    def batch(self) -> None:
        if self.done:
            return
        start = time.perf_counter()
        db, cur, now = self.db, self.db.cursor, self.now
        at = db.time(now)
        db.begin()
        ids = [row[0] for row in cur.execute(self.due, (at, at, self.size)).fetchall()]
        rows: list[Any] = []
        if ids:
            marks = ", ".join("?" * len(ids))
            cur.execute(db.sql(LEASE_SQL.format(ids=marks)), (db.time(now + LEASE), *ids))
            rows = cur.execute(db.sql(CLAIMED.format(ids=marks)), ids).fetchall()
        db.commit()
        if not rows:
            self.done = True
            self.seconds += time.perf_counter() - start
            return
        stamp = now.isoformat()
        attempts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        for row in rows:
            d_id, _, recipient, role, key, _, kind, level = row[:8]
            c_id, title, unit, state, due, paused = row[8:]
            due_at = db.parse_time(due)
            payload = {
                "id": key, "event": kind, "level": level,
                "case": {
                    "id": c_id, "title": title, "unit": unit, "state": state,
                    "due_at": due_at.astimezone(self.tz).isoformat() if due_at else None,
                    "light": self.light(due_at, paused is not None),
                },
                "recipient": {"name": recipient, "role": role}, "at": stamp,
            }  # fmt: skip
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            timestamp = str(int(time.time()))
            mac = hmac.new(self.secret, f"{timestamp}.".encode() + body, hashlib.sha256)
            response = self.client.post(self.hook, content=body, headers={
                "Content-Type": "application/json; charset=utf-8",
                "X-Rectiflow-Delivery": key, "X-Rectiflow-Timestamp": timestamp,
                "X-Rectiflow-Signature": "sha256=" + mac.hexdigest(),
            })  # fmt: skip
            code = str(response.status_code)
            detail = f"HTTP {code} {response.reason_phrase} from {self.hook}"
            if response.is_success:
                self.sent += 1
                attempts.append((d_id, at, "delivered", code, detail))
                updates.append(("sent", code, None, at, db.time(now), d_id))
            else:  # the server answers 200; a retry here would be a bench failure shown below
                attempts.append((d_id, at, "retry", code, detail))
                later = db.time(now + dt.timedelta(minutes=1))
                updates.append(("retrying", code, detail, None, later, d_id))
        db.begin()
        cur.executemany(db.sql(INSERT_ATTEMPT), attempts)
        cur.executemany(db.sql(UPDATE_DELIVERY), updates)
        sent = [u[-1] for u in updates if u[0] == "sent"]
        if sent:
            marks = ", ".join("?" * len(sent))
            cur.execute(db.sql(DELIVERED.format(ids=marks)), (at, *sent))
        db.commit()
        if len(rows) < self.size:
            self.done = True
        self.seconds += time.perf_counter() - start

    def close(self) -> None:
        self.client.close()
        self.db.close()


# --- taking turns ---------------------------------------------------------------------------


class TakingTurns:
    """The Engine's store with a hand-over before each claim: the raw loop runs a batch
    there, and the time it takes is kept apart."""

    def __init__(self, store: Any, other: Callable[[], None]) -> None:
        self._store, self._other = store, other
        self.waited = 0.0

    def claim_deliveries(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        self._other()
        self.waited += time.perf_counter() - start
        return self._store.claim_deliveries(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def run_pair(engine_url: str, raw_url: str, server: WebhookServer, batch: int) -> dict[str, float]:
    now = dt.datetime.now(dt.UTC)
    raw = RawDelivery(raw_url, f"{server.base}/raw", now, batch)
    with Engine(engine_url) as engine:
        dispatcher = Dispatcher(engine, config_for(f"{server.base}/engine"), batch_size=batch)
        turns = TakingTurns(engine.store, raw.batch)
        dispatcher.store = turns
        cpu, wall = server.cpu_seconds(), time.perf_counter()
        try:
            start = time.perf_counter()
            summary = dispatcher.run_once(now)
            seconds = time.perf_counter() - start - turns.waited
            while not raw.done:
                raw.batch()
        finally:
            dispatcher.close()
            raw.close()
        busy = (server.cpu_seconds() - cpu) / (time.perf_counter() - wall)
    return {
        "engine": summary.delivered, "engine_s": seconds, "raw": raw.sent,
        "raw_s": raw.seconds, "server_busy": busy,
    }  # fmt: skip


def http_alone(server: WebhookServer, count: int = 2_000) -> float:
    """Requests a second of the raw loop's POSTs (same sizes, signed) with no database."""
    body = json.dumps({"id": "esc:1:1:warn:owner:ops:owner-U01", "event": "escalation",
                       "level": "warn", "case": {"id": 1, "title": "整改问题 1", "unit": "U01",
                       "state": "rectify", "due_at": "2026-01-01T23:59:59+08:00",
                       "light": "red"}, "recipient": {"name": "owner-U01", "role": "owner"},
                       "at": "2026-01-01T00:00:00+00:00"},
                      ensure_ascii=False, separators=(",", ":")).encode()  # fmt: skip
    with httpx.Client(timeout=10.0, headers={"User-Agent": "rectiflow"}) as client:
        start = time.perf_counter()
        for i in range(count):
            timestamp = str(int(time.time()))
            mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
            client.post(f"{server.base}/alone", content=body, headers={
                "Content-Type": "application/json; charset=utf-8",
                "X-Rectiflow-Delivery": f"alone:{i}", "X-Rectiflow-Timestamp": timestamp,
                "X-Rectiflow-Signature": "sha256=" + mac.hexdigest(),
            })  # fmt: skip
        return count / (time.perf_counter() - start)


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="pending deliveries (default 20000)")
    parser.add_argument("--db", help="sqlite:///NEW_FILE or postgresql+psycopg://... server")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"claim size (default {BATCH})")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    logger.remove()  # as the CLI: warnings and errors only
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}")

    server = WebhookServer()
    try:
        with scratch_database(args.db, "delivery") as url:
            backend = "PostgreSQL" if is_postgres(url) else "SQLite (WAL, synchronous=NORMAL)"
            print(
                f"{backend}: {args.n} pending webhook deliveries, batches of {args.batch}, "
                "to a local HTTP/1.1 keep-alive server"
            )
            build(url, args.n, dt.datetime.now(dt.UTC), f"{server.base}/engine")
            engine_url, raw_url = copy_database(url, "engine"), copy_database(url, "raw")
            try:
                result = run_pair(engine_url, raw_url, server, args.batch)
                same = outcome(engine_url) == outcome(raw_url) == (args.n,) * 4
            finally:
                drop_copy(engine_url)
                drop_copy(raw_url)
        alone = http_alone(server)
        stats = server.stats()
    finally:
        server.close()
    seen = {side: stats.get(f"/{side}", {}) for side in ("engine", "raw")}
    for side, s in seen.items():
        if (s.get("requests"), s.get("keys"), s.get("bad")) != (args.n, args.n, 0):
            raise SystemExit(f"the server saw from {side}: {s}")
    if not same or seen["engine"]["bytes"] != seen["raw"]["bytes"]:
        raise SystemExit(f"the two sides differ: {seen}, same database outcome: {same}")
    engine_rate = result["engine"] / result["engine_s"]
    raw_rate = result["raw"] / result["raw_s"]
    print(f"engine  {fmt_rate(int(result['engine']), result['engine_s'])} deliveries")
    print(f"raw     {fmt_rate(int(result['raw']), result['raw_s'])} deliveries")
    print(
        f"webhook server: {100 * result['server_busy']:.0f}% of a core while both ran; "
        f"the same requests alone (no database): {alone:,.0f}/s"
    )
    print(f"ratio {engine_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
