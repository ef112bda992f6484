"""The SMTP channel: one UTF-8 mail per message (a message is for one recipient), over a new
SMTP connection per send (plain, STARTTLS or implicit TLS; login when a username is set).

Outcomes: the server's 2xx/3xx acceptance delivered; a 4xx reply retry, a 5xx reply dead;
refused connections, drops and timeouts retry; a recipient without an email address dead.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage

from rectiflow.notify.channels_http import RateLimiter, scrub
from rectiflow.notify.message import Message, SendResult

SECURITIES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


def parse_sender(name: str, sender: object) -> Address:
    """``督办系统 <rectiflow@example.internal>`` (or a bare address) as an Address;
    ValueError when it holds no address."""
    if not isinstance(sender, str) or not sender.strip():
        raise ValueError(f"channel {name!r}: 'from' is required")
    display, addr = email.utils.parseaddr(sender)
    if "@" not in addr:
        raise ValueError(f"channel {name!r}: 'from' is not an address: {sender!r}")
    username, domain = addr.rsplit("@", 1)
    return Address(display_name=display, username=username, domain=domain)


def message_id(key: str, domain: str) -> str:
    """A Message-ID that depends on the idempotency key only: a resend carries the same."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<rectiflow.{digest}@{domain}>"


class SmtpChannel:
    """Sends each message as a mail to its recipient's email address."""

    type: str = "smtp"

    def __init__(
        self,
        name: str,
        host: str,
        *,
        sender: Address,
        port: int | None = None,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        rate_per_minute: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in SECURITIES:
            raise ValueError(
                f"channel {name!r}: security must be one of {', '.join(SECURITIES)}, "
                f"not {security!r}"
            )
        self.name = name
        self.host = host
        self.port = port if port is not None else DEFAULT_PORTS[security]
        self.security = security
        self.sender = sender
        self.timeout = timeout
        self.rate_per_minute = rate_per_minute
        self._username = username
        self._password = password
        self._context = ssl_context
        self._limiter = RateLimiter(rate_per_minute) if rate_per_minute else None

    def close(self) -> None:
        """Nothing to release: each send opens and closes its own connection."""

    def build_email(self, message: Message, to: Address) -> EmailMessage:
        mail = EmailMessage(policy=email.policy.SMTP)
        mail["From"] = self.sender
        mail["To"] = to
        mail["Subject"] = message.subject
        mail["Date"] = email.utils.format_datetime(message.at)
        mail["Message-ID"] = message_id(message.key, self.sender.domain or "rectiflow")
        mail["X-Rectiflow-Delivery"] = message.key
        mail.set_content(message.body, charset="utf-8", cte="base64")  # 7-bit safe
        return mail

    def send(self, message: Message) -> SendResult:
        recipient = message.recipient
        if not recipient.email:
            return SendResult("dead", None, f"no email address for {recipient.name}")
        try:
            to = Address(display_name=recipient.name, addr_spec=recipient.email)
        except (ValueError, IndexError) as exc:
            text = f"bad email address for {recipient.name}: {recipient.email!r} ({exc})"
            return SendResult("dead", None, self._scrub(text))
        mail = self.build_email(message, to)
        if self._limiter is not None:
            self._limiter.wait()
        where = f"{self.host}:{self.port}"
        try:
            self._deliver(mail, to.addr_spec)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (-1, b""))
            return self._reply_result(code, reply, f"recipient {to.addr_spec} refused by {where}")
        except smtplib.SMTPResponseException as exc:
            return self._reply_result(exc.smtp_code, exc.smtp_error, f"{where} answered")
        except smtplib.SMTPServerDisconnected as exc:
            return SendResult("retry", None, self._scrub(f"{where} disconnected: {exc}"))
        except smtplib.SMTPException as exc:  # STARTTLS or AUTH not offered, and the like
            text = f"{where}: {type(exc).__name__}: {exc}"
            return SendResult("dead", None, self._scrub(text))
        except TimeoutError:
            return SendResult("retry", None, f"timeout after {self.timeout:g}s talking to {where}")
        except OSError as exc:  # refused, reset, unreachable, TLS handshake
            text = f"connection error with {where}: {type(exc).__name__}: {exc}"
            return SendResult("retry", None, self._scrub(text))
        return SendResult("delivered", "250", f"accepted by {where} for {to.addr_spec}")

    def _deliver(self, mail: EmailMessage, to: str) -> None:
        smtp: smtplib.SMTP
        if self.security == "ssl":
            context = self._context or ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                smtp.starttls(context=self._context or ssl.create_default_context())
            if self._username:
                smtp.login(self._username, self._password or "")
            smtp.send_message(mail, from_addr=self.sender.addr_spec, to_addrs=[to])
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()  # the mail is accepted (or already failed): only tidy up

    def _reply_result(self, code: int, reply: bytes | str, what: str) -> SendResult:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        detail = self._scrub(f"{what} {code} {text}")
        if 400 <= code < 500:
            return SendResult("retry", str(code), detail)
        if 500 <= code < 600:
            return SendResult("dead", str(code), detail)
        return SendResult("retry", str(code) if code > 0 else None, detail)

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._password or ""])
