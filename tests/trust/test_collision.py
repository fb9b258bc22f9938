"""Collision control: who else is on a case, expiring 25 s after the last heartbeat."""
from __future__ import annotations

import pytest

from app import collision
from tests.factories import login, make_staff


def test_presence_is_shared_and_expires(redis_client):
    collision.heartbeat(redis_client, "interaction:1", staff_id=1, name="Ann", mode="viewing", now=1000)
    others = collision.heartbeat(redis_client, "interaction:1", staff_id=2, name="Bo", mode="replying", now=1010)
    assert [(p.staff_id, p.mode) for p in others] == [(1, "viewing")]
    assert [p.name for p in collision.present(redis_client, "interaction:1", now=1020)] == ["Bo", "Ann"]
    assert [p.name for p in collision.present(redis_client, "interaction:1", now=1026)] == ["Bo"], "Ann expired"
    collision.leave(redis_client, "interaction:1", staff_id=2)
    assert collision.present(redis_client, "interaction:1", now=1027) == []
    with pytest.raises(ValueError):
        collision.heartbeat(redis_client, "interaction:1", staff_id=1, name="Ann", mode="typing")


def test_newer_customer_messages():
    assert collision.newer_customer_messages(5, [3, 5, 7, 9]) == [7, 9]
    assert collision.newer_customer_messages(None, [2, 1]) == [1, 2]
    assert collision.newer_customer_messages(9, [3, 9]) == []


def test_http_heartbeats_between_two_agents(app, db_session):
    ann, bo = make_staff(db_session, name="Ann"), make_staff(db_session, name="Bo")
    db_session.commit()
    first, second = app.test_client(), app.test_client()
    login(first, ann)
    login(second, bo)
    assert first.post("/api/collision/interaction:7/heartbeat", json={"mode": "viewing"}).json["others"] == []
    seen = second.post("/api/collision/interaction:7/heartbeat", json={"mode": "replying"}).json["others"]
    assert [p["name"] for p in seen] == ["Ann"]
    assert first.post("/api/collision/interaction:7/heartbeat").json["others"][0]["mode"] == "replying"
    assert first.post("/api/collision/interaction:7/heartbeat", json={"mode": "x"}).status_code == 422
    assert first.post("/api/collision/../../etc/heartbeat").status_code == 404
    assert first.post("/api/collision/DROP TABLE/heartbeat").status_code == 404
    assert second.post("/api/collision/interaction:7/leave").json == {"ok": True}
    assert first.post("/api/collision/interaction:7/heartbeat").json["others"] == []
    assert app.test_client().post("/api/collision/interaction:7/heartbeat").status_code == 401
