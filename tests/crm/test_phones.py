"""Phone normalisation to E.164."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crm.phones import InvalidPhone, display_phone, normalise_phone, try_normalise_phone


@pytest.mark.parametrize("raw,region,e164", [
    ("+8613812345678", "CN", "+8613812345678"),
    ("013812345678", "CN", "+8613812345678"),
    ("138 1234 5678", "CN", "+8613812345678"),
    ("138-1234-5678", "CN", "+8613812345678"),
    ("0086 138 1234 5678", "CN", "+8613812345678"),
    ("(010) 6552 9988", "CN", "+861065529988"),
    ("+1 (415) 555-2671", "CN", "+14155552671"),
    ("415-555-2671", "US", "+14155552671"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("  +44 20 7946 0958  ", "US", "+442079460958"),
])
def test_normalise_table(raw, region, e164):
    assert normalise_phone(raw, region) == e164


@pytest.mark.parametrize("raw,region,reason", [
    ("", "CN", "empty"),
    (None, "CN", "empty"),
    ("   ", "CN", "empty"),
    ("anonymous", "CN", "unparsable"),
    ("1" * 80, "CN", "too_long"),
    ("12", "CN", "invalid"),
    ("+86 123", "CN", "invalid"),
    ("13812345678", "XX", "unknown_region"),
])
def test_bad_numbers_raise_with_a_reason(raw, region, reason):
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(raw, region)
    assert caught.value.reason == reason
    assert caught.value.en and caught.value.zh
    assert isinstance(caught.value, ValueError)


def test_try_normalise_returns_none_for_caller_id_garbage():
    assert try_normalise_phone("anonymous") is None
    assert try_normalise_phone("+8613812345678") == "+8613812345678"


def test_display_phone():
    assert display_phone("+8613812345678") == "+86 138 1234 5678"
    assert display_phone("not a number") == "not a number"


@given(st.text(max_size=70))
def test_normalise_either_returns_e164_or_raises_invalid_phone(raw):
    try:
        result = normalise_phone(raw, "CN")
    except InvalidPhone:
        return
    assert result.startswith("+") and result[1:].isdigit() and len(result) <= 16
    assert normalise_phone(result, "CN") == result  # idempotent


@given(st.integers(min_value=13000000000, max_value=13999999999))
def test_chinese_mobiles_round_trip(number):
    e164 = normalise_phone(str(number), "CN")
    assert e164 == f"+86{number}"
    assert normalise_phone(display_phone(e164), "US") == e164
