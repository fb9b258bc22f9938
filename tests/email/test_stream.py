"""A stream of batches (the IMAP poller, ``flask mail ingest``): each batch's results in order, as
``ingest_many`` gives them, with the next batch stored while this one is processed -- never more than
one batch ahead, nothing parsed before it is stored, nothing lost when the stream stops or fails."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from app.channels.email import batch as batch_module
from app.channels.email.batch import RawMessage, ingest_batches
from app.channels.email.jobs import STALE_PENDING_S, process_stale_pending
from app.channels.email.models import EmailMessage, InboundEmail
from app.db import utcnow
from tests.email.conftest import SECRET, build_mail


def _mail(n: int, **kwargs) -> bytes:
    kwargs.setdefault("sender", f"c{n}@customer.test")
    return build_mail(subject=f"Stream {n}", message_id=f"<stream-{n}@customer.test>", body=f"body {n}", **kwargs)


def _committed_keys(app) -> set[str]:
    """The keys another connection sees: what has committed."""
    from app.extensions import db

    with db.engine.connect() as conn:
        return set(conn.scalars(text("SELECT message_key FROM email_inbound")))


def _on_postgresql(db_session) -> bool:
    return db_session.get_bind().dialect.name == "postgresql"


def test_each_batch_is_answered_in_order_with_duplicates_and_replies_across_batches(app, desk, db_session):
    first, second = _mail(1), _mail(2)
    reply = build_mail(sender="c1@customer.test", subject="Re: Stream 1", message_id="<stream-reply@customer.test>",
                       in_reply_to="stream-1@customer.test")
    batches = [[RawMessage(first), RawMessage(second)], [RawMessage(reply), RawMessage(first)], [],
               [RawMessage(_mail(3))]]
    answered = list(ingest_batches(db_session, desk, "support", batches, source="imap", secret=SECRET))
    assert [[r.status for r in results] for results in answered] == [
        ["stored", "stored"], ["stored", "duplicate"], [], ["stored"]]
    assert answered[1][1].inbound_id == answered[0][0].inbound_id  # the copy names the message stored first
    assert answered[1][0].interaction_id == answered[0][0].interaction_id and not answered[1][0].new_case
    assert answered[3][0].new_case
    statuses = db_session.scalars(select(InboundEmail.status)).all()
    assert sorted(statuses) == ["processed"] * 4
    assert db_session.scalar(select(EmailMessage.id).where(EmailMessage.message_id == "stream-reply@customer.test"))


def _four_batches(pulled: list[int]):
    """Four one-message batches, noting in ``pulled`` each one the stream takes."""
    for n in range(1, 5):
        pulled.append(n)
        yield [RawMessage(_mail(n))]


def test_the_next_batch_is_stored_while_this_one_is_processed_and_no_further(app, desk, db_session):
    pulled: list[int] = []
    stream = ingest_batches(db_session, desk, "support", _four_batches(pulled), source="cli", secret=SECRET)
    results = next(stream)
    assert [r.status for r in results] == ["stored"]
    if _on_postgresql(db_session):  # one batch ahead, never more: stored by the helper, committed, before its turn
        assert pulled == [1, 2]
        assert "mid:stream-2@customer.test" in _committed_keys(app)
        assert db_session.scalar(select(InboundEmail.status).where(
            InboundEmail.message_key == "mid:stream-2@customer.test")) == "pending"
    assert [[r.status for r in more] for more in stream] == [["stored"]] * 3
    assert pulled == [1, 2, 3, 4]


def test_the_next_batch_is_parsed_beside_the_processing_once_stored(app, desk, db_session, monkeypatch):
    import threading

    real = batch_module._parse_or_quarantine
    engine = db_session.get_bind()
    seen: list[tuple[str, bool]] = []

    def recording(row, limits):
        with engine.connect() as conn:  # what another connection sees: what has committed
            committed = conn.scalar(text("SELECT count(*) FROM email_inbound WHERE id = :id"), {"id": row.id}) == 1
        seen.append((threading.current_thread().name, committed))
        return real(row, limits)

    monkeypatch.setattr(batch_module, "_parse_or_quarantine", recording)
    answered = list(ingest_batches(db_session, desk, "support", [[RawMessage(_mail(n))] for n in range(1, 4)],
                                   source="imap", secret=SECRET))
    assert [[r.status for r in results] for results in answered] == [["stored"]] * 3
    assert all(committed for _, committed in seen)  # never parsed before its raw bytes committed
    if _on_postgresql(db_session):
        assert all(name.startswith("email-parse") for name, _ in seen)


def test_a_stream_stopped_early_leaves_the_batch_stored_ahead_pending_for_the_sweep(app, desk, db_session):
    if not _on_postgresql(db_session):
        pytest.skip("batches are stored ahead on PostgreSQL only")
    pulled: list[int] = []
    stream = ingest_batches(db_session, desk, "support", _four_batches(pulled), source="imap", secret=SECRET)
    next(stream)
    stream.close()  # the consumer failed: the helper is waited for, nothing more is pulled
    assert pulled == [1, 2]
    rows = dict(db_session.execute(select(InboundEmail.message_key, InboundEmail.status)).all())
    assert rows == {"mid:stream-1@customer.test": "processed", "mid:stream-2@customer.test": "pending"}
    swept = process_stale_pending(db_session, desk, secret=SECRET,
                                  now=utcnow() + timedelta(seconds=STALE_PENDING_S + 1))
    assert [r.status for r in swept] == ["stored"]


def test_an_outage_storing_a_later_batch_surfaces_at_its_turn_after_the_earlier_ones(app, desk, db_session,
                                                                                   second_chunk_fails):
    if not _on_postgresql(db_session):
        pytest.skip("batches are stored ahead on PostgreSQL only")
    calls = second_chunk_fails
    stream = ingest_batches(db_session, desk, "support", [[RawMessage(_mail(n))] for n in range(1, 4)],
                            source="imap", secret=SECRET)
    assert [r.status for r in next(stream)] == ["stored"]
    with pytest.raises(OperationalError):
        next(stream)
    assert calls == [1, 1]  # the third batch was never stored
    db_session.rollback()
    assert db_session.scalars(select(InboundEmail.message_key)).all() == ["mid:stream-1@customer.test"]


def test_an_outage_while_processing_stops_the_stream_and_leaves_what_was_stored_pending(app, desk, db_session,
                                                                                       monkeypatch):
    def failing(*args, **kwargs):
        raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    monkeypatch.setattr(batch_module, "_process_batch", failing)
    stream = ingest_batches(db_session, desk, "support", [[RawMessage(_mail(n))] for n in range(1, 4)],
                            source="imap", secret=SECRET)
    with pytest.raises(OperationalError):
        next(stream)
    db_session.rollback()
    statuses = db_session.scalars(select(InboundEmail.status)).all()
    assert statuses and set(statuses) == {"pending"}  # the first batch, and the next if it was stored ahead
    assert len(statuses) <= 2  # never more than one batch ahead


def test_a_source_failing_for_the_next_batch_lets_this_one_be_answered_first(app, desk, db_session):
    def batches():
        yield [RawMessage(_mail(1))]
        raise ConnectionResetError("the IMAP server went away")

    stream = ingest_batches(db_session, desk, "support", batches(), source="imap", secret=SECRET)
    assert [r.status for r in next(stream)] == ["stored"]
    with pytest.raises(ConnectionResetError):
        next(stream)
    assert db_session.scalars(select(InboundEmail.status)).all() == ["processed"]


def test_without_a_helper_the_batches_go_one_after_another(app, desk, db_session, monkeypatch):
    """SQLite, or a session bound to a connection: no helper can store beside the session."""
    monkeypatch.setattr(batch_module, "helper_engine", lambda session: None)
    pulled: list[int] = []

    def batches():
        for n in range(1, 4):
            pulled.append(n)
            yield [RawMessage(_mail(n)), RawMessage(_mail(n))]

    stream = ingest_batches(db_session, desk, "support", batches(), source="cli", secret=SECRET)
    assert [r.status for r in next(stream)] == ["stored", "duplicate"]
    assert pulled == [1]  # nothing is taken ahead
    assert [[r.status for r in more] for more in stream] == [["stored", "duplicate"]] * 2


def test_an_unknown_mailbox_is_refused_before_anything_is_stored(app, desk, db_session):
    with pytest.raises(KeyError):
        next(ingest_batches(db_session, desk, "nowhere", [[RawMessage(_mail(1))]], source="cli", secret=SECRET))
    assert db_session.scalar(select(InboundEmail.id)) is None
