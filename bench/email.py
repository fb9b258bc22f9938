"""``python -m bench email [--json] [--messages N] [--batch N] [--database-url URL]``: email ingest throughput.

Messages per second through the full ingest path -- store raw, parse, thread, identify the customer,
create the case, route it to a queue and compose the acknowledgement -- with one worker (this
process, sequentially), on PostgreSQL (``--database-url``, else ``BENCH_DATABASE_URL``, else a scratch
database ``bench_email`` on 127.0.0.1, created if missing; its tables are dropped and recreated).
By default messages go in batches of 50 through ``batch.ingest_batches``, as the IMAP poller (its
default ``batch_size``) and ``flask mail ingest`` send them: a helper stores each batch (committed) while
the batch before is processed, one commit processes a batch. ``--one-batch-at-a-time`` sends each batch
through ``batch.ingest_many`` alone instead (stored, then processed, nothing overlapping the two). ``--batch 1`` measures the one-message door instead (``ingest_raw``, as the
raw-MIME HTTP endpoint uses it: two commits per message).
Three kinds of mail (``--kinds attachments`` runs only some): ``plain`` (text), ``html`` (text + HTML alternative with inline styling) and
``attachments`` (HTML plus three attachments, ~300 KB, named differently in each message). A fifth of each batch are replies that thread
into earlier cases. Sending is not measured (the acknowledgement jobs are collected, not run).
JSON fields per kind: kind, messages, messages_per_s, batch, stream, p50_ms, p99_ms (per call: a message, or a
batch; in a stream, from one batch's results to the next), cpu_ms_per_message (this process's CPU: with the database waits excluded it shows what one
uncontended worker could do), worker_thread_cpu_ms_per_message (of that, the CPU of the thread that
ingests: what it spends in series; the rest is the helper that stores raw bytes beside it, ``rawstore``),
database_cpu_ms_per_message (CPU of the PostgreSQL backends serving the
database, from /proc: parsing, storing and compressing what this process sent), database_bytes_per_message
(growth of the bench database on disk: tables, TOAST and indexes), wal_bytes_per_message (WAL the server
wrote meanwhile: cluster-wide, so other databases' writes during the run count too -- an upper bound),
statements_per_message (SQL statements sent through SQLAlchemy, savepoints included; not the
helper's raw INSERTs of a batch of several chunks, one per message, sent at the driver),
new_cases, threaded, acks; with ``--calls``, python_calls_per_message (Python function calls counted by
cProfile: a figure other processes' load does not move; the run is then slower and its CPU and rates
include the profiler's cost).
Figures only; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_email"
KINDS = ("plain", "html", "attachments")


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench email", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON line per kind")
    parser.add_argument("--messages", type=int, default=600, help="messages per kind")
    parser.add_argument("--customers", type=int, default=2000, help="known customers (CRM records)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=50, help="messages per batch; 1: one at a time (ingest_raw)")
    parser.add_argument("--one-batch-at-a-time", dest="stream", action="store_false",
                        help="each batch through ingest_many alone (no storing of the next meanwhile)")
    parser.add_argument("--calls", action="store_true", help="count Python function calls per message (cProfile)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated kinds to run ({', '.join(KINDS)})")
    return parser.parse_args(argv)


def _ensure_database(url: str) -> None:
    """Create the scratch database when it is missing (PostgreSQL only)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    if not target.drivername.startswith("postgresql"):
        return
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).scalar()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


class _CollectingJobs:
    """Stands in for the job queue: the acknowledgement send jobs are counted, not run."""

    def __init__(self) -> None:
        self.count = 0

    def enqueue(self, func, *args, **kwargs):
        self.count += 1


def _app(url: str):
    from app import create_app

    env = {"DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-not-a-secret"),
           "LOG_LEVEL": "WARNING"}
    app = create_app(env=env, overrides={"ROUTER_THREAD": False, "PERIODIC_THREAD": False, "JOBS_MODE": "inline"})
    app.extensions["desk.jobs"] = _CollectingJobs()
    return app


def _cpu_seconds(pids: list[int], database: str | None = None) -> float:
    from bench.voice import _cpu_seconds as cpu_seconds

    return cpu_seconds(pids, database)


def _disk(db) -> tuple[int, int]:
    """(size of the current database on disk, WAL position of the server), in bytes."""
    from sqlalchemy import text

    size, wal = db.session.execute(text(
        "SELECT pg_database_size(current_database()), pg_current_wal_lsn() - '0/0'::pg_lsn")).one()
    db.session.commit()
    return int(size), int(wal)


def _body(rng: random.Random, paragraphs: int) -> str:
    words = ["order", "parcel", "delivery", "refund", "invoice", "thanks", "please", "help", "account", "customer", "service", "arrived", "damaged", "missing", "订单", "快递", "退款", "发票", "谢谢", "问题", "尽快", "处理"]
    return "\n\n".join(" ".join(rng.choice(words) for _ in range(60)) for _ in range(paragraphs))


def build_message(kind: str, n: int, rng: random.Random, customers: int, reply_to: str | None) -> bytes:
    msg = EmailMessage()
    sender = f"c{rng.randint(1, customers)}@example.cn" if rng.random() < 0.8 else f"new{n}@example.org"
    msg["From"] = f"Customer {n} <{sender}>"
    msg["To"] = "support@desk.example"
    msg["Subject"] = f"{'Re: ' if reply_to else ''}Order {100000 + n} 订单问题"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<bench-{kind}-{n}-{rng.getrandbits(32):x}@example.cn>"
    if reply_to:
        msg["In-Reply-To"] = f"<{reply_to}>"
        msg["References"] = f"<{reply_to}>"
    text = _body(rng, 3)
    msg.set_content(text)
    if kind in ("html", "attachments"):
        paragraphs = "".join(f'<p style="color:#333">{p}</p>' for p in _body(rng, 8).split("\n\n"))
        msg.add_alternative(f"<html><body><table><tr><td>{paragraphs}</td></tr></table>"
                            f'<img src="https://tracker.example/p.gif"></body></html>', subtype="html")
    if kind == "attachments":
        # each message's own file names, as customers' are: only what real mail repeats repeats here
        msg.add_attachment(rng.randbytes(150_000), maintype="application", subtype="pdf", filename=f"invoice-{n}.pdf")
        msg.add_attachment(rng.randbytes(100_000), maintype="image", subtype="png", filename=f"photo-{n}.png")
        msg.add_attachment(rng.randbytes(50_000), maintype="application", subtype="octet-stream",
                           filename=f"报告-{n}.docx")
    return msg.as_bytes()


def _seed_customers(db, count: int) -> None:
    from sqlalchemy import insert

    from app.crm.models import Customer, CustomerEmail

    db.session.execute(insert(Customer), [{"id": i, "name": f"Customer {i}", "kind": "individual",
                                           "language": "zh" if i % 2 else "en", "tier": "ordinary",
                                           "is_prospect": False, "attributes": {}} for i in range(1, count + 1)])
    db.session.execute(insert(CustomerEmail), [{"customer_id": i, "email": f"c{i}@example.cn"}
                                               for i in range(1, count + 1)])
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        db.session.execute(text("SELECT setval('customers_id_seq', (SELECT max(id) FROM customers))"))
        db.session.commit()


def run_kind(app, kind: str, messages: int, customers: int, rng: random.Random, batch_size: int = 50,
             calls: bool = False, stream: bool = True) -> dict:
    from sqlalchemy import event, func, select

    from app.channels.email.batch import RawMessage, ingest_batches, ingest_many
    from app.channels.email.ingest import ingest_raw
    from app.channels.email.models import EmailMessage as Stored
    from app.extensions import db

    desk_config = app.extensions["desk.config"]
    secret = app.config["SECRET_KEY"]
    jobs = app.extensions["desk.jobs"]
    acks_before = jobs.count
    earlier: list[str] = []
    timings, new_cases, threaded = [], 0, 0
    batch = []
    for n in range(messages):
        reply_to = rng.choice(earlier) if earlier and rng.random() < 0.2 else None
        batch.append(build_message(kind, n, rng, customers, reply_to))
        if len(earlier) < 200 and reply_to is None:
            earlier.append(batch[-1].split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode())
    statements = [0]

    def count(*_args) -> None:
        statements[0] += 1

    event.listen(db.engine, "before_cursor_execute", count)
    profiler = None
    if calls:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    database = db.engine.url.database if db.engine.dialect.name == "postgresql" else None
    disk_started = _disk(db) if database else None
    db_cpu_started = _cpu_seconds([], database) if database else 0.0
    groups = [[RawMessage(raw) for raw in batch[start:start + batch_size]] for start in range(0, len(batch), batch_size)]
    if batch_size == 1:
        outcomes = ([ingest_raw(db.session, desk_config, "support", raw, source="cli", secret=secret)]
                    for raw in batch)
    elif stream:  # as the IMAP poller and ``flask mail ingest`` send them: the next batch stored meanwhile
        outcomes = ingest_batches(db.session, desk_config, "support", groups, source="cli", secret=secret)
    else:
        outcomes = (ingest_many(db.session, desk_config, "support", messages, source="cli", secret=secret)
                    for messages in groups)
    started, cpu_started, thread_started = time.perf_counter(), time.process_time(), time.thread_time()
    t0 = started
    for results in outcomes:
        now = time.perf_counter()
        timings.append((now - t0) * 1000)
        t0 = now
        for result in results:
            new_cases += result.new_case
            threaded += result.status == "stored" and not result.new_case
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    thread_cpu = time.thread_time() - thread_started
    db_cpu = _cpu_seconds([], database) - db_cpu_started if database else None
    disk = [round((end - start) / messages) for start, end in zip(disk_started, _disk(db), strict=True)] \
        if database else [None, None]
    extra = {}
    if profiler is not None:
        import pstats

        profiler.disable()
        extra["python_calls_per_message"] = round(pstats.Stats(profiler).total_calls / messages)
    event.remove(db.engine, "before_cursor_execute", count)
    db.session.remove()
    stored = db.session.scalar(select(func.count()).select_from(Stored))
    db.session.remove()
    return {"kind": kind, "messages": messages, "messages_per_s": round(messages / elapsed, 1), "batch": batch_size,
            "stream": stream and batch_size > 1,
            "p50_ms": round(statistics.median(timings), 2),
            "p99_ms": round(sorted(timings)[max(0, int(len(timings) * 0.99) - 1)], 2),
            "cpu_ms_per_message": round(cpu * 1000 / messages, 2),
            "worker_thread_cpu_ms_per_message": round(thread_cpu * 1000 / messages, 2),
            "database_cpu_ms_per_message": round(db_cpu * 1000 / messages, 2) if db_cpu is not None else None,
            "database_bytes_per_message": disk[0], "wal_bytes_per_message": disk[1],
            "statements_per_message": round(statements[0] / messages, 2),
            "new_cases": new_cases, "threaded": threaded, "acks": jobs.count - acks_before,
            "stored_messages_total": stored, "database": db.engine.dialect.name, **extra}


def main(argv: list[str]) -> int:
    args = _args(argv)
    unknown = {k.strip() for k in args.kinds.split(",") if k.strip()} - set(KINDS)
    if unknown:
        print(f"error: unknown kinds {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}", file=sys.stderr)
        return 2
    try:
        _ensure_database(args.database_url)
    except Exception as exc:  # an unreachable server: say so plainly
        print(f"error: cannot reach the database at {args.database_url}: {exc}", file=sys.stderr)
        return 2
    app = _app(args.database_url)
    from app.extensions import db

    results = []
    with app.app_context():
        import queues.models  # noqa: F401 - the router's tables belong in the metadata
        db.drop_all()
        db.create_all()
        _seed_customers(db, args.customers)
        rng = random.Random(args.seed)
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            results.append(run_kind(app, kind, args.messages, args.customers, rng, max(1, args.batch), args.calls,
                                    args.stream))
    for result in results:
        if args.json:
            print(json.dumps(result))
    print(f"{'kind':<12} {'messages':>8} {'batch':>5} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>7}"
          f" {'thr ms':>6} {'db ms':>6} {'stmts':>6} {'new':>5} {'threaded':>8} {'acks':>5}")
    for r in results:
        print(f"{r['kind']:<12} {r['messages']:>8} {r['batch']:>5} {r['messages_per_s']:>8} {r['p50_ms']:>8} "
              f"{r['p99_ms']:>8} {r['cpu_ms_per_message']:>7} {r['worker_thread_cpu_ms_per_message']:>6} "
              f"{r['database_cpu_ms_per_message'] if r['database_cpu_ms_per_message'] is not None else '-':>6} "
              f"{r['statements_per_message']:>6} {r['new_cases']:>5} "
              f"{r['threaded']:>8} {r['acks']:>5}")
    return 0
