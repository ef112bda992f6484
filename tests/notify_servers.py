"""Real local servers for the delivery tests: a standard-library HTTP server in a thread
that records each POST and answers as scripted (a webhook receiver that checks signatures,
a DingTalk robot that checks its sign, a WeCom robot), one that never answers, and
aiosmtpd's SMTP server recording the mail it receives."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from rectiflow.notify.channels import verify_signature

SMTP_LOGIN = (b"rectiflow", b"s3cret-pass")


@dataclass
class Answer:
    status: int = 200
    body: Any = b"ok"  # bytes as is, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    client_port: int
    verified: bool | None = None  # the signature checked by the server (None: not checked)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class Recorder(ThreadingHTTPServer):
    """Records each POST, answers with the next scripted Answer (``default`` when none is
    left). With ``shape``, it checks what the real receiver would: ``webhook`` the
    X-Rectiflow-Signature with ``secret`` (401 when it does not verify), ``dingtalk`` the
    sign of the URL with ``secret`` (errcode 310000 when it does not match), and both
    robots answer ``{"errcode": 0}`` by default."""

    daemon_threads = True

    def __init__(self, port: int = 0, *, shape: str | None = None, secret: str = "") -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.received: list[Received] = []
        self.answers: deque[Answer] = deque()
        self.shape, self.secret = shape, secret
        ok: Any = {"errcode": 0, "errmsg": "ok"} if shape in ("dingtalk", "wecom") else b"ok"
        self.default = Answer(200, ok)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def keys(self) -> list[str]:
        """X-Rectiflow-Delivery of each request, in order."""
        with self.lock:
            return [r.headers.get("x-rectiflow-delivery", "") for r in self.received]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up on a slow answer: nothing to report."""

    def check(self, received: Received) -> Answer | None:
        """The refusal of a request that fails the shape's check, or None."""
        if self.shape == "webhook":
            received.verified = verify_signature(
                self.secret,
                received.headers.get("x-rectiflow-timestamp", ""),
                received.body,
                received.headers.get("x-rectiflow-signature"),
                max_age=300,
            )
            return None if received.verified else Answer(401, b"bad signature")
        if self.shape == "dingtalk" and self.secret:
            stamp = received.query.get("timestamp", "")
            mac = hmac.new(self.secret.encode(), f"{stamp}\n{self.secret}".encode(), hashlib.sha256)
            received.verified = stamp.isdigit() and received.query.get("sign") == base64.b64encode(
                mac.digest()
            ).decode("ascii")
            if not received.verified:
                return Answer(200, {"errcode": 310000, "errmsg": "sign not match"})
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = urllib.parse.urlsplit(self.path)
        received = Received(
            path=parts.path,
            query=dict(urllib.parse.parse_qsl(parts.query)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            client_port=self.client_address[1],
        )
        refusal = self.server.check(received)
        with self.server.lock:
            self.server.received.append(received)
            answer = self.server.answers.popleft() if self.server.answers else self.server.default
        answer = refusal or answer
        if answer.delay:
            time.sleep(answer.delay)
        data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(recorder: Recorder) -> Iterator[Recorder]:
    """Serve ``recorder`` in a thread until the block ends."""
    thread = threading.Thread(target=recorder.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.shutdown()
        recorder.server_close()
        thread.join()


@contextmanager
def silent_server() -> Iterator[str]:
    """A URL whose server takes the connection and never answers (a hung endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)  # never accepted: the kernel completes connections, nobody reads
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/rectiflow"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- SMTP ---------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """Records each mail; RCPT answers 450 for busy@…, 550 for nobody@…"""

    mails: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("busy@"):
            return "450 4.2.1 mailbox busy, try later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.mails.append((str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"

    def parsed(self, index: int) -> EmailMessage:
        mail = email.message_from_bytes(self.mails[index][2], policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        return mail


def _authenticate(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == SMTP_LOGIN
    return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """aiosmtpd on a free loopback port (AUTH LOGIN/PLAIN as rectiflow / s3cret-pass)."""
    mailbox = Mailbox()
    port = closed_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
