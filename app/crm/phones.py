"""Phone numbers to E.164, the one form the CRM stores and identification matches on.

Caller ids arrive as '+8613812345678', '013812345678', '138 1234 5678' or 'anonymous'; numbers typed by
agents or imported from CSV use the desk's default region (``crm.default_country``) when no '+' is given.
"""
from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

MAX_RAW_LENGTH = 64


class InvalidPhone(ValueError):
    """The text is not a usable phone number. ``reason`` is a stable code; ``en``/``zh`` say why."""

    MESSAGES = {
        "empty": ("no phone number given", "未提供电话号码"),
        "too_long": ("the phone number is too long", "电话号码过长"),
        "unparsable": ("not a phone number", "不是电话号码"),
        "invalid": ("not a valid number for its country", "不是该国家/地区的有效号码"),
        "unknown_region": ("unknown default country", "未知的默认国家/地区"),
    }

    def __init__(self, raw: str, reason: str):
        self.raw = raw
        self.reason = reason
        self.en, self.zh = self.MESSAGES[reason]
        super().__init__(f"{raw[:MAX_RAW_LENGTH]!r}: {self.en}")


def normalise_phone(raw: str | None, default_region: str = "CN") -> str:
    """Return ``raw`` in E.164 ('+8613812345678'). Raises InvalidPhone with the reason.

    A number starting with '+' (or '00') is read as international; otherwise as a number of
    ``default_region``. The number must be valid (right length and prefix) for its country."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone(text, "empty")
    if len(text) > MAX_RAW_LENGTH:
        raise InvalidPhone(text, "too_long")
    if default_region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidPhone(text, "unknown_region")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        raise InvalidPhone(text, "unparsable") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(text, "invalid")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def try_normalise_phone(raw: str | None, default_region: str = "CN") -> str | None:
    """``normalise_phone`` for caller ids, where 'anonymous' or garbage simply means 'no number'."""
    try:
        return normalise_phone(raw, default_region)
    except InvalidPhone:
        return None


def display_phone(e164: str) -> str:
    """International display form ('+86 138 1234 5678') of a stored E.164 number."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, None), PhoneNumberFormat.INTERNATIONAL)
    except NumberParseException:
        return e164
