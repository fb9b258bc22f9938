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


@pytest.mark.browser
def test_the_mail_simulator_shows_what_the_desk_sends_without_a_reload(live_server, browser, db_session, jobs,  # noqa: F811
                                                                        outbox):
    """The customer's side of the demo: send through the real intake, and the list of what the desk sent
    redraws itself when a reply goes out later (here: an agent's, after its undo window)."""
    from app.channels.email import outbound

    agent = make_staff(db_session, role="agent")
    db_session.commit()
    page = browser.new_page()
    _sign_in(page, live_server.url, agent.email)
    page.goto(f"{live_server.url}/dev/mail")
    page.fill("input[name=sender]", "wei@customer.test")
    page.fill("input[name=subject]", "Parcel missing")
    page.fill("textarea[name=body]", "My parcel has not arrived.")
    page.click("#compose button[type=submit]")
    page.wait_for_selector("#sent-0")  # the acknowledgement
    case_id = db_session.scalar(select(Interaction.id).where(Interaction.channel == "email"))
    assert page.locator(".flash").inner_text() == f"Delivered: a new case, C-{case_id}."
    page.fill("textarea[name=body]", "A draft being written")

    outbound.schedule_reply(db_session, live_server.app.extensions["desk.config"], case_id, body="It is on its way.",
                            staff_id=agent.id, agent_name="Agent", secret=live_server.app.config["SECRET_KEY"])
    db_session.commit()
    jobs.run_delayed()  # the undo window has passed: the reply goes out
    page.wait_for_selector("#sent-1", timeout=15_000)
    assert "It is on its way." in page.locator("#sent-1 pre").inner_text()
    assert page.input_value("textarea[name=body]") == "A draft being written"  # the form is left alone
