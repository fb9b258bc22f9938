"""The outbound mail transport behind one interface: SMTP for real, a recording twin for the demo and
benchmarks. Failures are typed: temporary ones are retried with backoff, permanent ones are not."""
from __future__ import annotations

import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from typing import Protocol

from app.channels.email.config import SmtpSettings


class DeliveryFailure(Exception):
    def __init__(self, message: str, code: int | None = None):
        self.code = code
        super().__init__(message)


class TemporaryFailure(DeliveryFailure):
    """Try again later: the server is unreachable, busy, or answered 4xx."""


class PermanentFailure(DeliveryFailure):
    """The server refused for good (5xx): retrying would not help."""


class Mailer(Protocol):
    def send(self, message: MimeMessage, *, sender: str, recipients: list[str]) -> None: ...


@dataclass
class RecordedMail:
    sender: str
    recipients: list[str]
    message: MimeMessage


class RecordingMailer:
    """Keeps what would have been sent (thread-safe), newest last."""

    def __init__(self) -> None:
        self.sent: list[RecordedMail] = []
        self._lock = threading.Lock()

    def send(self, message: MimeMessage, *, sender: str, recipients: list[str]) -> None:
        with self._lock:
            self.sent.append(RecordedMail(sender, list(recipients), message))


class SmtpMailer:
    def __init__(self, settings: SmtpSettings):
        self.settings = settings

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "ssl":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=ssl.create_default_context())
        client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        if s.security == "starttls":
            client.starttls(context=ssl.create_default_context())
        return client

    def send(self, message: MimeMessage, *, sender: str, recipients: list[str]) -> None:
        """Deliver or raise Temporary/PermanentFailure."""
        try:
            with self._connect() as client:
                if self.settings.username:
                    client.login(self.settings.username, self.settings.password.resolve() or "")
                refused = client.send_message(message, from_addr=sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _classify(exc.recipients) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryFailure(f"SMTP authentication failed: {exc.smtp_code}", exc.smtp_code) from exc
        except smtplib.SMTPResponseException as exc:
            cls = PermanentFailure if 500 <= exc.smtp_code < 600 else TemporaryFailure
            raise cls(f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}", exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"SMTP connection failed: {exc}") from exc
        if refused:
            raise _classify(refused)


def _classify(refused: dict) -> DeliveryFailure:
    codes = [code for code, _ in refused.values()]
    detail = "; ".join(f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in refused.items())
    if all(500 <= code < 600 for code in codes):
        return PermanentFailure(f"recipient refused: {detail}", codes[0])
    return TemporaryFailure(f"recipient deferred: {detail}", codes[0])


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def mailer_for(settings: SmtpSettings, recording: RecordingMailer) -> Mailer:
    return recording if settings.transport == "recording" else SmtpMailer(settings)
