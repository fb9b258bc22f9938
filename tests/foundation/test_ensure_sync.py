"""The app remembers which hooks and views are plain functions (Flask asks about each on every request)."""
from __future__ import annotations

import pytest
from flask import Flask

from app import DeskFlask


def test_a_plain_function_is_returned_as_is_and_remembered():
    app = DeskFlask(__name__)

    def view():
        return "ok"

    assert app.ensure_sync(view) is view
    assert view in app._plain_functions
    assert app.ensure_sync(view) is view


def test_a_coroutine_function_is_treated_as_flask_treats_it_and_not_remembered():
    app, plain_flask = DeskFlask(__name__), Flask(__name__)

    async def view():
        return "ok"

    try:
        expected = plain_flask.ensure_sync(view)
    except RuntimeError as exc:  # Flask without its async extra refuses coroutine views
        with pytest.raises(RuntimeError, match=str(exc)[:20]):
            app.ensure_sync(view)
    else:
        assert app.ensure_sync(view) is not view and callable(expected)
    assert view not in app._plain_functions


def test_per_request_closures_cannot_grow_the_memory_without_end():
    app = DeskFlask(__name__)
    app.MAX_REMEMBERED = 3
    closures = [(lambda n=n: n) for n in range(5)]
    assert [app.ensure_sync(f) for f in closures] == closures
    assert len(app._plain_functions) == 3


def test_the_desk_app_is_a_desk_flask(app):
    assert isinstance(app, DeskFlask)
