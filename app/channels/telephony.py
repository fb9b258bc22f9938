"""The telephone network behind one interface: Twilio in production, a recording twin for the demo.

The desk asks the network for three things it cannot do with a webhook answer: move a live call to
new TwiML (bridge a waiting caller to the agent who accepted), place an outbound call (a callback
that kept its place) and end a call (hang up from the console). The twin records each request so the
phone simulator and the tests can see what the desk asked for.
"""
from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from typing import Any

from flask import Flask

from app.db import utcnow

log = logging.getLogger(__name__)


class TelephonyError(Exception):
    """The network refused or failed a request; ``detail`` says what it answered."""

    def __init__(self, action: str, detail: str):
        self.action, self.detail = action, detail
        super().__init__(f"telephony {action} failed: {detail}")


class Telephony(ABC):
    @abstractmethod
    def redirect_call(self, call_sid: str, url: str) -> None:
        """Make the live call ``call_sid`` fetch and run the TwiML at ``url`` now."""

    @abstractmethod
    def place_call(self, *, to: str, from_: str, url: str, status_callback: str) -> str:
        """Dial ``to``; when answered, run the TwiML at ``url``. Returns the new call's sid."""

    @abstractmethod
    def hangup_call(self, call_sid: str) -> None:
        """End the call ``call_sid`` (a call already ended is not an error)."""


class TwilioTelephony(Telephony):
    """Twilio's REST API through the twilio library. ``http_client`` is the library's own hook for
    the transport (a proxy, a region, or a local server that records requests)."""

    def __init__(self, account_sid: str, auth_token: str, *, http_client: Any = None):
        from twilio.rest import Client

        self.client = Client(account_sid, auth_token, http_client=http_client)

    def _call(self, action: str, func, *args, **kwargs):
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            return func(*args, **kwargs)
        except TwilioRestException as exc:
            raise TelephonyError(action, f"{exc.status} {exc.code}: {exc.msg}") from exc
        except (TwilioException, OSError) as exc:  # OSError: requests' transport errors (refused, timed out)
            raise TelephonyError(action, str(exc) or type(exc).__name__) from exc

    def redirect_call(self, call_sid: str, url: str) -> None:
        self._call("redirect", self.client.calls(call_sid).update, url=url, method="POST")

    def place_call(self, *, to: str, from_: str, url: str, status_callback: str) -> str:
        call = self._call("place", self.client.calls.create, to=to, from_=from_, url=url, method="POST",
                          status_callback=status_callback, status_callback_method="POST",
                          status_callback_event=["initiated", "ringing", "answered", "completed"])
        return call.sid

    def hangup_call(self, call_sid: str) -> None:
        self._call("hangup", self.client.calls(call_sid).update, status="completed")


@dataclass(frozen=True)
class TelephonyRequest:
    action: str  # redirect | place | hangup
    call_sid: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


class RecordingTelephony(Telephony):
    """The demo and test twin: keeps every request, in order, and invents call sids for new calls."""

    def __init__(self) -> None:
        self.requests: list[TelephonyRequest] = []
        self._lock = threading.Lock()
        self._sids = count(1)

    def _keep(self, action: str, call_sid: str, **data: Any) -> None:
        with self._lock:
            self.requests.append(TelephonyRequest(action, call_sid, utcnow(), data))

    def redirect_call(self, call_sid: str, url: str) -> None:
        self._keep("redirect", call_sid, url=url)

    def place_call(self, *, to: str, from_: str, url: str, status_callback: str) -> str:
        with self._lock:
            sid = f"CA{next(self._sids):032x}"
        self._keep("place", sid, to=to, from_=from_, url=url, status_callback=status_callback)
        return sid

    def hangup_call(self, call_sid: str) -> None:
        self._keep("hangup", call_sid)

    def requests_since(self, index: int) -> tuple[list[tuple[int, TelephonyRequest]], int]:
        """(position, request) of every request from ``index`` on, and the position the next one will
        have (the phone simulator polls with it)."""
        with self._lock:
            return list(enumerate(self.requests[index:], start=index)), len(self.requests)


def init_telephony(app: Flask) -> None:
    """Choose the implementation: ``TELEPHONY`` = 'twilio' | 'recording' in the Flask config; by
    default the recording twin while dev tools are on with the built-in placeholder account,
    Twilio otherwise."""
    settings = app.extensions["desk.settings"]
    choice = app.config.get("TELEPHONY")
    if choice is None:
        placeholder = set(settings.twilio_account_sid[2:]) <= {"0"}
        choice = "recording" if settings.dev_tools_enabled and placeholder else "twilio"
    if choice == "recording":
        app.extensions["desk.telephony"] = RecordingTelephony()
    elif choice == "twilio":
        app.extensions["desk.telephony"] = TwilioTelephony(settings.twilio_account_sid, settings.twilio_auth_token)
    else:
        raise ValueError(f"TELEPHONY: unknown implementation {choice!r}; use 'twilio' or 'recording'")
    log.info("telephony: %s", type(app.extensions["desk.telephony"]).__name__)
