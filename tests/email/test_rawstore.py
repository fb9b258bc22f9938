"""A batch's raw messages stored chunk by chunk ahead of parsing: each message parsed only once its own
chunk has committed, duplicates stored once across chunks, an outage stopping where it happened."""
from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from app.channels.email import rawstore
from app.channels.email.batch import RawMessage, ingest_many
from app.channels.email.models import InboundEmail
from app.db import utcnow
from tests.email.conftest import SECRET, build_mail


@pytest.mark.parametrize(("sizes", "limit", "expected"), [
    ([], 10, []),
    ([4], 10, [(0, 1)]),
    ([4, 4, 4], 10, [(0, 2), (2, 3)]),
    ([4, 6, 1], 10, [(0, 2), (2, 3)]),
    ([30, 1, 30], 10, [(0, 1), (1, 2), (2, 3)]),  # an item bigger than the limit is a chunk of its own
    ([5, 5, 5, 5], 10, [(0, 2), (2, 4)]),
])
def test_chunks_are_consecutive_and_hold_at_most_the_limit(sizes, limit, expected):
    assert [(group.start, group.stop) for group in rawstore.chunks(sizes, limit)] == expected


@pytest.mark.parametrize(("sizes", "expected"), [
    ([], []),
    ([4, 4], [(0, 2)]),  # one chunk's worth: stored in one go
    ([4, 4, 4], [(0, 2), (2, 3)]),
    ([4, 4, 4, 1, 1, 1], [(0, 2), (2, 3), (3, 6)]),  # the last holds at most 3
    ([4, 4, 4, 2, 2], [(0, 2), (2, 4), (4, 5)]),
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [(0, 9), (9, 12)]),
    ([4, 4, 9], [(0, 2), (2, 3)]),  # a last item bigger than the last chunk's share is a chunk of its own
])
def test_the_last_chunk_is_small(sizes, expected):
    assert [(group.start, group.stop) for group in rawstore.chunks(sizes, 10, last=3)] == expected


def _rows(raws: list[bytes], keys: list[str]) -> list[dict]:
    return [{"mailbox": "support", "message_key": key, "source": "imap", "source_ref": None, "raw": raw,
             "raw_size": len(raw), "raw_sha256": None, "headers_only": False, "status": "pending", "attempts": 0,
             "received_at": utcnow()} for raw, key in zip(raws, keys, strict=True)]


def _hashed(raws: list[bytes], keys: list[str]) -> list[dict]:
    return [dict(row, raw_sha256=hashlib.sha256(row["raw"]).hexdigest()) for row in _rows(raws, keys)]


def _committed_keys(app) -> set[str]:
    """The keys another connection sees: what has committed."""
    from app.extensions import db

    with db.engine.connect() as conn:
        return set(conn.scalars(text("SELECT message_key FROM email_inbound")))


def test_each_chunk_is_handed_over_only_once_committed_and_a_key_is_stored_once(app, db_session):
    raws = [build_mail(subject=f"Chunk {n}", message_id=f"<chunk-{n}@customer.test>", body="x" * 300)
            for n in range(5)]
    keys = ["mid:a", "mid:b", "mid:a", "mid:c", "mid:c"]  # a repeated in a later chunk, c within one
    rows = _rows(raws, keys)
    seen = []
    for group, inserted in rawstore.store_ahead(db_session, rows, raws, limit=2 * len(raws[0])):
        seen.append((list(group), sorted(inserted)))
        assert {rows[index]["message_key"] for index in group} <= _committed_keys(app)
    if db_session.get_bind().dialect.name == "postgresql":
        assert seen == [([0, 1], ["mid:a", "mid:b"]), ([2], []), ([3, 4], ["mid:c"])]
    else:  # SQLite: one INSERT for the batch, as before
        assert seen == [([0, 1, 2, 3, 4], ["mid:a", "mid:b", "mid:c"])]
    stored = dict(db_session.execute(select(InboundEmail.message_key, InboundEmail.raw_sha256)).all())
    assert stored == {"mid:a": hashlib.sha256(raws[0]).hexdigest(), "mid:b": hashlib.sha256(raws[1]).hexdigest(),
                      "mid:c": hashlib.sha256(raws[3]).hexdigest()}


def test_a_message_stored_headers_only_keeps_the_hash_of_the_whole_message(app, db_session):
    """The database hashes what it stores; a message too big to store whole is hashed as received."""
    raws = [build_mail(subject=f"Whole {n}", message_id=f"<whole-{n}@customer.test>", body="y" * 2000)
            for n in range(4)]
    rows = _rows(raws, [f"mid:{n}" for n in range(4)])
    head = raws[2][:raws[2].index(b"\n\n")]
    rows[2].update(raw=head, headers_only=True)
    list(rawstore.store_ahead(db_session, rows, raws, limit=len(raws[0]) + 1))
    stored = dict(db_session.execute(select(InboundEmail.message_key, InboundEmail.raw_sha256)).all())
    assert stored == {f"mid:{n}": hashlib.sha256(raw).hexdigest() for n, raw in enumerate(raws)}
    assert bytes(db_session.scalar(select(InboundEmail.raw).where(InboundEmail.message_key == "mid:2"))) == head


def test_a_batch_in_several_chunks_is_ingested_as_one(app, desk, db_session, monkeypatch):
    monkeypatch.setattr(rawstore, "CHUNK_BYTES", 3000)
    first = build_mail(message_id="<first@customer.test>", subject="First", body="a" * 1500)
    reply = build_mail(message_id="<reply@customer.test>", subject="Re: First", in_reply_to="first@customer.test",
                       body="b" * 1500)
    other = build_mail(sender="carol@customer.test", subject="Other", body="c" * 1500)
    results = ingest_many(db_session, desk, "support", [RawMessage(raw) for raw in (first, reply, first, other)],
                          source="imap", secret=SECRET)
    assert [r.status for r in results] == ["stored", "stored", "duplicate", "stored"]
    assert results[2].inbound_id == results[0].inbound_id
    assert results[1].interaction_id == results[0].interaction_id and not results[1].new_case
    rows = db_session.execute(select(InboundEmail.status, InboundEmail.raw, InboundEmail.raw_sha256)).all()
    assert sorted(status for status, _, _ in rows) == ["processed"] * 3
    assert all(digest == hashlib.sha256(raw).hexdigest() for _, raw, digest in rows)


def test_an_outage_in_a_later_chunk_propagates_and_the_chunks_before_stay_stored(app, desk, db_session, monkeypatch,
                                                                                   second_chunk_fails):
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("chunks are stored apart on PostgreSQL only")
    calls = second_chunk_fails
    monkeypatch.setattr(rawstore, "CHUNK_BYTES", 2500)
    raws = [build_mail(subject=f"Outage {n}", sender=f"c{n}@customer.test", message_id=f"<outage-{n}@customer.test>",
                       body="z" * 1500) for n in range(3)]
    with pytest.raises(OperationalError):
        ingest_many(db_session, desk, "support", [RawMessage(raw) for raw in raws], source="imap", secret=SECRET)
    assert calls == [1, 1]  # the third chunk was never begun
    db_session.rollback()
    stored = db_session.execute(select(InboundEmail.raw, InboundEmail.status)).all()
    assert [(bytes(raw), status) for raw, status in stored] == [(raws[0], "pending")]  # for the sweep to process


def test_a_chunk_commits_without_waiting_for_the_disk_and_leaves_its_connection_as_it_was(app, db_session,
                                                                                       monkeypatch):
    """Its durability comes from the batch's processing commit (synchronous), which every acknowledgement
    to the source waits for: the chunk's own commit need not wait for the WAL to reach the disk."""
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("chunks are stored apart on PostgreSQL only")
    import psycopg

    sent: list[str] = []
    real_execute = psycopg.Cursor.execute

    def recording(self, query, *args, **kwargs):
        sent.append(str(query))
        return real_execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    raws = [build_mail(subject=f"Fast {n}", message_id=f"<fast-{n}@customer.test>") for n in range(2)]
    engine = db_session.get_bind()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        inserted = rawstore.insert_pipelined(conn, _hashed(raws, ["mid:f0", "mid:f1"]), durable=False)
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"  # that transaction's alone
    assert sorted(inserted) == ["mid:f0", "mid:f1"]
    assert sent[0] == rawstore._NOT_WAITING_FOR_DISK
    assert _committed_keys(app) >= {"mid:f0", "mid:f1"}
    sent.clear()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        rawstore.insert_pipelined(conn, _hashed(raws[:1], ["mid:f2"]))
    assert rawstore._NOT_WAITING_FOR_DISK not in sent  # durable by default
