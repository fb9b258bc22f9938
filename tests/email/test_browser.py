"""In the browser: an agent reads a customer's mail (remote images blocked), replies, and undoes it."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.channels.email.models import EmailMessage
from app.interactions.models import Interaction
from tests.email.conftest import build_mail
from tests.factories import PASSWORD, make_staff


def _sign_in(page, base: str, email: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.mark.browser
@pytest.mark.parametrize(("lang", "undo", "cancelled", "show_images"), [
    ("en", "Undo", "Reply cancelled.", "Show images"),
    ("zh", "撤销", "回复已取消。", "显示图片"),
])
def test_agent_replies_and_undoes_in_the_browser(live_server, browser, ingest, db_session, jobs,  # noqa: F811
                                                 lang, undo, cancelled, show_images):
    result = ingest(build_mail(html='<p id="greeting">Hello from Alice</p><img src="https://tracker.test/p.gif">'
                                    '<script>document.title="owned"</script>'))
    agent = make_staff(db_session, role="agent", language=lang)
    db_session.get(Interaction, result.interaction_id).agent_id = agent.id  # the agent holding the case
    db_session.commit()
    page = browser.new_page()
    remote_requests = []
    page.on("request", lambda request: remote_requests.append(request.url)
            if "tracker.test" in request.url else None)
    _sign_in(page, live_server.url, agent.email)
    page.goto(f"{live_server.url}/email/cases/{result.interaction_id}?lang={lang}")

    assert page.locator(".mail .html p").first.inner_text() == "Hello from Alice"
    assert page.title() != "owned" and remote_requests == []
    assert page.get_by_role("button", name=show_images).is_visible()

    page.fill("#reply-body", "We are on it.")
    page.click("#reply-form button[type=submit]")
    page.get_by_role("button", name=undo).click()
    page.wait_for_function(f"document.getElementById('reply-status').textContent === {cancelled!r}")
    db_session.expire_all()
    reply = db_session.scalar(select(EmailMessage).where(EmailMessage.kind == "reply"))
    assert reply.status == "cancelled"
