"""A test caller: posts Twilio's webhooks, signed as Twilio signs them, and follows the TwiML."""
from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator

BASE = "http://desk.test"  # PUBLIC_BASE_URL in tests/conftest.py
TOKEN = "test-twilio-token"
_sids = itertools.count(1)


def new_call_sid() -> str:
    return f"CA{next(_sids):032x}"


def sign(url: str, params: dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


class Reply:
    def __init__(self, response):
        self.status = response.status_code
        self.text = response.get_data(as_text=True)
        self.root = ET.fromstring(self.text) if self.text.strip() else None

    @property
    def verbs(self) -> list[str]:
        return [child.tag for child in self.root]

    @property
    def said(self) -> list[str]:
        return [el.text or "" for el in self.root.iter("Say")]

    def first(self, tag: str):
        return next(self.root.iter(tag), None)

    @property
    def gather_url(self) -> str:
        return self.first("Gather").get("action")

    @property
    def redirect_url(self) -> str:
        return self.first("Redirect").text


class Caller:
    """One call. ``post`` signs with the call's sid; ``press`` answers the current Gather."""

    def __init__(self, client, *, from_: str = "+8613800138000", to: str = "+862100000000",
                 call_sid: str | None = None):
        self.client = client
        self.call_sid = call_sid or new_call_sid()
        self.from_, self.to = from_, to
        self.last: Reply | None = None

    def post(self, url: str, params: dict[str, str] | None = None, *, signature: str | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        url = url if url.startswith("http") else BASE + url
        form = {"CallSid": self.call_sid, "From": self.from_, "To": self.to, "AccountSid": "AC" + "1" * 32,
                **(params or {})}
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        all_headers = {"X-Twilio-Signature": sign(url, form) if signature is None else signature, **(headers or {})}
        self.last = Reply(self.client.post(path, data=form, headers=all_headers))
        return self.last

    def dial(self) -> Reply:
        return self.post("/voice/incoming", {"CallStatus": "ringing"})

    def press(self, digits: str = "", speech: str = "") -> Reply:
        params = {"Digits": digits} if digits else {}
        if speech:
            params["SpeechResult"] = speech
        return self.post(self.last.gather_url, params)

    def follow(self) -> Reply:
        return self.post(self.last.redirect_url)

    def hang_up(self, duration_s: int = 30) -> Reply:
        return self.post("/voice/status", {"CallStatus": "completed", "CallDuration": str(duration_s)})
