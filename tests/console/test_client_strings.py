"""The console's script shows codes from the customer 360 by name, in the agent's language."""
from __future__ import annotations

import flask_babel

from agent_console.i18n import client_strings
from app.complaints.states import ComplaintState
from app.interactions.states import State


def _strings(app, language: str) -> dict[str, str]:
    with app.test_request_context(f"/console/?lang={language}"):
        flask_babel.refresh()  # the test's app context outlives each request: forget the last one's locale
        return client_strings()


def test_every_state_and_status_the_screen_pop_shows_has_a_name_in_both_languages(app):
    for language in ("en", "zh"):
        strings = _strings(app, language)
        assert all(f"state_{state}" in strings for state in State)
        assert all(f"complaint_state_{state}" in strings for state in ComplaintState)
        assert {"status_shipped", "status_in_transit", "status_refunded", "churn_none", "churn_high"} <= set(strings)
    strings = _strings(app, "zh")
    assert (strings["state_closed"], strings["complaint_state_investigating"], strings["status_in_transit"],
            strings["churn_none"]) == ("已关闭", "调查中", "运输中", "无")
    strings = _strings(app, "en")
    assert (strings["state_callback_pending"], strings["complaint_state_awaiting_approval"]) == \
        ("Callback pending", "Awaiting approval")
