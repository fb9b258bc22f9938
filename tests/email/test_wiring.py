"""The channel's seams: configuration checks, routing and identification through the neighbours, the periodic tick."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.channels.email import routing
from app.channels.email.config import EmailConfig, Secret, check_email_against_desk
from app.channels.email.jobs import due_mailboxes, email_tick_job, poll_due_mailboxes
from app.channels.email.models import MailboxPollState
from app.db import utcnow
from app.interactions.models import Interaction
from tests.email.conftest import SECRET, build_mail, email_config, set_email_config
from tests.factories import make_customer
from tests.statements import sent_statements


def test_config_rejects_unknown_and_non_email_queues(desk):
    from app.config import DeskConfig

    good = desk.model_copy(update={"email": email_config()})
    check_email_against_desk(good)
    for overrides, message in [
        ({"rules": [{"queue": "nope"}]}, "email.rules.0.queue: unknown queue 'nope'"),
        ({"autoreply": {"reply_within_h": {"ghost": 2}}}, "email.autoreply.reply_within_h.ghost"),
    ]:
        bad = desk.model_copy(update={"email": email_config(**overrides)})
        with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("'", ".")):
            check_email_against_desk(bad)
    voice_only = desk.routing.model_copy(update={"queues": [q.model_copy(update={"channels": ["voice"]})
                                                            if q.name == "general" else q
                                                            for q in desk.routing.queues]})
    with pytest.raises(ValueError, match="does not take the email channel"):
        check_email_against_desk(desk.model_copy(update={"routing": voice_only, "email": email_config()}))
    assert DeskConfig.model_fields["email"].annotation is EmailConfig


def test_email_config_validation():
    with pytest.raises(ValueError, match="unique"):
        email_config(mailboxes=[{"name": "a", "address": "a@x.test"}, {"name": "a", "address": "b@x.test"}])
    with pytest.raises(ValueError, match="unknown mailbox"):
        email_config(rules=[{"mailbox": "ghost", "queue": "general"}])
    with pytest.raises(ValueError, match="backoff_s"):
        email_config(outbound={"backoff_s": [0]})
    config = email_config()
    assert config.own_addresses() == {"support@desk.test", "help@desk.test", "billing@desk.test"}
    with pytest.raises(KeyError):
        config.mailbox("ghost")
    assert Secret(value="lit", env="DESK_X").resolve({"DESK_X": "from-env"}) == "from-env"
    assert Secret(value="lit", env="DESK_X").resolve({}) == "lit"


def test_the_shipped_config_yaml_has_a_valid_email_section():
    from app.config import load_desk_config

    config = load_desk_config()
    assert config.email.mailboxes and config.email.smtp.transport in ("smtp", "recording")


def test_a_new_case_is_routed_by_the_router(ingest, db_session):
    result = ingest(build_mail())
    interaction = db_session.get(Interaction, result.interaction_id)
    assert (interaction.state, interaction.queue) == ("queued", "general")
    assert interaction.routing_age_origin is not None


def test_identify_uses_the_crm_and_never_guesses(db_session, desk):
    known = make_customer(db_session, email="known@customer.test", language="zh")
    info = routing.identify_customer(db_session, "Known@customer.test", name="", language="en", create_prospect=True)
    assert info.id == known.id and info.language == "zh"
    make_customer(db_session, email="shared@customer.test")
    make_customer(db_session, email="shared@customer.test")
    assert routing.identify_customer(db_session, "shared@customer.test", name="", language="en",
                                     create_prospect=False) is None, "two customers: the agent chooses"
    assert routing.customer_info(db_session, None) is None and routing.customer_addresses(db_session, None) == set()


def test_identification_gives_the_customer_facts_without_reading_the_customer_again(db_session, desk):
    known = make_customer(db_session, email="facts@customer.test", language="zh", tier="vip", name="Wang")
    db_session.flush()
    found = {}

    def identify():
        found["info"] = routing.identify_customer(db_session, "facts@customer.test", name="", language="en",
                                                  create_prospect=True)
        found["prospect"] = routing.identify_customer(db_session, "new-one@customer.test", name="Li",
                                                      language="zh", create_prospect=True)

    sent = sent_statements(db_session, identify)
    info, prospect = found["info"], found["prospect"]
    assert info == routing.CustomerInfo(known.id, "Wang", "zh", "vip", False)
    assert (prospect.name, prospect.language, prospect.tier, prospect.is_prospect) == ("Li", "zh", "small", True)
    assert prospect == routing.customer_info(db_session, prospect.id)
    # one matching query per sender (and the prospect's inserts), no read of the customer row afterwards
    assert not any(s.lstrip().startswith("SELECT customers.id, customers.name, customers.language") for s in sent)


def test_due_mailboxes_respect_the_poll_interval(app, desk, db_session):
    config = set_email_config(app, mailboxes=[
        {"name": "support", "address": "support@desk.test",
         "imap": {"host": "127.0.0.1", "port": 1, "security": "none", "username": "u"}},
        {"name": "webonly", "address": "web@desk.test"}])
    now = utcnow()
    assert due_mailboxes(db_session, config, now) == ["support"]
    db_session.scalar(select(MailboxPollState)).last_attempt_at = now
    db_session.commit()
    assert due_mailboxes(db_session, config, now + timedelta(seconds=30)) == []
    assert due_mailboxes(db_session, config, now + timedelta(seconds=60)) == ["support"]


def test_the_periodic_tick_polls_with_a_lock_and_records_failure(app, desk, db_session, redis_client):
    set_email_config(app, mailboxes=[
        {"name": "support", "address": "support@desk.test",
         "imap": {"host": "127.0.0.1", "port": 1, "security": "none", "username": "u", "timeout_s": 2}}])
    email_tick_job()
    state = db_session.scalar(select(MailboxPollState))
    assert state.consecutive_failures == 1 and "Error" in state.last_error
    redis_client.set("desk:email:poll:support", "1")  # another worker is polling it
    assert poll_due_mailboxes(db_session, app.extensions["desk.config"], secret=SECRET, redis=redis_client,
                              force=True) == []
