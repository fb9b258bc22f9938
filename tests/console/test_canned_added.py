"""A canned reply an admin adds on the admin page is in the agent's picker (in the agent's UI language)
and renders for the agent's contact over the real /agent socket; once deleted it is refused."""
from __future__ import annotations

import json
import re

import requests

from app.channels import chat
from app.channels.email import templates
from app.channels.email.models import EmailTemplate
from tests.console.conftest import USER_AGENT, sign_in
from tests.console.test_workspace import open_desk, take_offer  # noqa: F401  (fixture)
from tests.factories import login, make_staff

ADDED = {
    "key": "store_credit", "label_en": "Store credit offered", "label_zh": "提供购物积分",
    "subject_en": "Store credit", "subject_zh": "购物积分",
    "body_en": "As an apology{% if customer.name %}, {{ customer.name }}{% endif %}, we have added store credit "
               "to your account ({{ case.reference }}).",
    "body_zh": "{{ customer.name }}，为表歉意，我们已向您的账户添加购物积分（{{ case.reference }}）。",
    "action": "save",
}


def _picker(base_url: str, staff) -> list[dict]:
    """The canned replies the console page hands to channels.js, as the agent's browser gets them."""
    page = requests.get(f"{base_url}/console/", headers={"Cookie": sign_in(base_url, staff.email),
                                                          "User-Agent": USER_AGENT}, timeout=10)
    assert page.status_code == 200
    found = re.search(r'<script id="console-page" type="application/json">(.*?)</script>', page.text, re.S)
    return json.loads(found.group(1))["reply_templates"]


def test_an_agent_inserts_a_reply_an_admin_just_added(app, client, db_session, agent_client, routed, socket_server,
                                                      open_desk):  # noqa: F811
    admin = make_staff(db_session, role="admin")
    amy = make_staff(db_session, name="Agent Amy", language="zh")
    bob = make_staff(db_session, name="Agent Bob", language="en")
    db_session.commit()
    login(client, admin)
    assert client.post("/admin/email/canned/new", data=ADDED).status_code == 302

    assert {"key": "canned_store_credit", "label": "提供购物积分"} in _picker(socket_server.url, amy)
    assert {"key": "canned_store_credit", "label": "Store credit offered"} in _picker(socket_server.url, bob)

    config = app.extensions["desk.config"]
    found, _token = chat.start_chat(db_session, config, name="王小红", email="wang@example.com", topic="general",
                                    language="zh")
    iid = found.interaction_id
    agent = agent_client(amy)
    agent.next("snapshot")
    take_offer(agent, routed)
    got = agent.call("reply_template", {"interaction_id": iid, "key": "canned_store_credit"})
    assert got["ok"] and got["template"]["language"] == "zh"
    assert got["template"]["body"] == f"王小红，为表歉意，我们已向您的账户添加购物积分（C-{iid}）。"

    other = agent_client(bob)  # the reply exists, the contact is not Bob's
    other.next("snapshot")
    assert other.call("reply_template", {"interaction_id": iid, "key": "canned_store_credit"})[
        "error"] == "not_your_work"

    # a text broken behind the admin page's back has no built-in to fall back on: refused, not leaked
    row = db_session.query(EmailTemplate).filter_by(key="canned_store_credit", language="zh").one()
    row.body = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    db_session.commit()
    templates._cache.clear()
    broken = agent.call("reply_template", {"interaction_id": iid, "key": "canned_store_credit"})
    assert broken["ok"] is False and broken["error"] == "broken_template" and "subclasses" not in str(broken.get(
        "template", ""))

    assert client.post("/admin/email/canned/canned_store_credit/delete").status_code == 302
    gone = agent.call("reply_template", {"interaction_id": iid, "key": "canned_store_credit"})
    assert gone["ok"] is False and gone["error"] == "unknown_template"
    assert "canned_store_credit" not in [c["key"] for c in _picker(socket_server.url, amy)]
