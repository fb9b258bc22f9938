"""Portal email delivery through the email channel's transport; the portal/chat config sections."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.config import ConfigError, load_desk_config
from app.portal import mail
from app.portal.config import ChatConfig
from app.portal.models import PortalEmail


class _Failing:
    def __init__(self, error):
        self.error, self.calls = error, 0

    def send(self, message, *, sender, recipients):
        self.calls += 1
        raise self.error


def _record(db_session, to="someone@example.com"):
    row = mail.record_email(db_session, to=to, subject="Hello", body="Plain text body", kind="test")
    db_session.commit()  # the listener delivers it (jobs run inline in tests)
    return row


def test_committed_email_is_sent_through_the_recording_mailer(app, db_session):
    outbox = app.extensions.setdefault("desk.email.outbox", __import__(
        "app.channels.email.mailer", fromlist=["RecordingMailer"]).RecordingMailer())
    before = len(outbox.sent)
    row = _record(db_session, to="Person@Example.com")
    db_session.refresh(row)
    assert row.status == "sent" and row.to_address == "person@example.com"
    sent = outbox.sent[before]
    assert sent.recipients == ["person@example.com"] and sent.message["Auto-Submitted"] == "auto-generated"
    assert sent.message.get_content().strip() == "Plain text body"
    assert mail.deliver_portal_email(row.id) == "sent"  # never twice
    assert mail.deliver_portal_email(999999) == "missing"


def test_rolled_back_email_is_never_sent(app, db_session):
    mail.record_email(db_session, to="x@example.com", subject="s", body="b", kind="test")
    db_session.rollback()
    assert db_session.scalar(select(PortalEmail.id)) is None


def test_temporary_failures_retry_then_fail_and_permanent_failures_stop(app, db_session, monkeypatch):
    from app.channels.email import mailer as mailers, outbound

    row = mail.record_email(db_session, to="t@example.com", subject="s", body="b", kind="test")
    db_session.flush()
    queued = []
    monkeypatch.setattr("app.jobs.enqueue", lambda func, *args, **kw: queued.append((args, kw["delay"])))
    temporary = _Failing(mailers.TemporaryFailure("busy", 451))
    monkeypatch.setattr(outbound, "current_mailer", lambda config: temporary)
    db_session.commit()
    assert mail.deliver_portal_email(row.id) == "retry"
    assert queued[-1][0] == (row.id, 1) and queued[-1][1].total_seconds() == mail.RETRY_DELAYS_S[0]
    assert mail.deliver_portal_email(row.id, len(mail.RETRY_DELAYS_S)) == "failed"
    other = mail.record_email(db_session, to="p@example.com", subject="s", body="b", kind="test")
    db_session.commit()
    monkeypatch.setattr(outbound, "current_mailer", lambda config: _Failing(mailers.PermanentFailure("no", 550)))
    assert mail.deliver_portal_email(other.id) == "failed"


def test_without_a_mailbox_the_email_stays_recorded(app, db_session, monkeypatch, caplog):
    config = app.extensions["desk.config"]
    monkeypatch.setitem(app.extensions, "desk.config", config.model_copy(
        update={"email": config.email.model_copy(update={"mailboxes": []})}))
    row = _record(db_session)
    db_session.refresh(row)
    assert row.status == "recorded"


@pytest.mark.parametrize("origin", ["shop.example.com", "https://shop.example.com/path", "ftp://x.example",
                                    "https://x.example?q=1"])
def test_chat_origins_must_be_origins(origin):
    with pytest.raises(ValueError):
        ChatConfig(allowed_origins=[origin])


def test_chat_origins_are_normalised():
    assert ChatConfig(allowed_origins=["https://shop.example.com/"]).allowed_origins == ["https://shop.example.com"]


@pytest.mark.parametrize("section,patch,message", [
    ("chat", {"topics": [{"code": "x", "label_en": "X", "label_zh": "X", "queue": "nowhere"}]},
     "chat.topics.x.queue: unknown queue"),
    ("portal", {"case_categories": [{"code": "x", "label_en": "X", "label_zh": "X", "queue": "nowhere"}]},
     "portal.case_categories.x.queue: unknown queue"),
])
def test_cross_checks_name_the_key(tmp_path, section, patch, message):
    import yaml

    from app.config import DEFAULT_CONFIG_PATH

    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    raw[section] = {**raw.get(section, {}), **patch}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_desk_config(path)
    assert message in str(err.value)


def test_chat_topic_queue_must_take_chat(tmp_path):
    import yaml

    from app.config import DEFAULT_CONFIG_PATH

    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    for queue in raw["routing"]["queues"]:
        if queue["name"] == "billing":
            queue["channels"] = ["voice", "email"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_desk_config(path)
    assert "does not take chat" in str(err.value)


def test_seed_command(app):
    result = app.test_cli_runner().invoke(args=["portal", "seed-kb"])
    assert result.exit_code == 0 and "8 articles added" in result.output
