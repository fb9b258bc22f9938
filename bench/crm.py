"""``python -m bench crm [--json] [--customers N] [--orders N] [--interactions N] [--lookups N] [--reuse]``

On PostgreSQL (env ``DATABASE_URL``; use a scratch database: the CRM tables are dropped and refilled):
generates customers with phones and emails, orders with shipments and interactions via COPY, then prints
- the 360 view by phone number (identify + customer_360, as the screen-pop does): ``p50_ms``, ``p99_ms``;
- one full value recomputation (facts, scoring, snapshots, tiers): ``recompute_s``.
JSON fields: customers, orders, interactions, p50_ms, p99_ms, recompute_s. Figures only; nothing asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, UTC

TABLES_IN_LOAD_ORDER = ["customers", "customer_phones", "customer_emails", "orders", "shipments", "interactions"]


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench crm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON line per result")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=2_000, help="360 views timed")
    parser.add_argument("--reuse", action="store_true", help="keep data already loaded at the same sizes")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


def _app(url: str):
    from app import create_app

    env = {"DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-not-a-secret"),
           "LOG_LEVEL": "WARNING"}
    return create_app(env=env, overrides={"ROUTER_THREAD": False, "PERIODIC_THREAD": False})


def _counts(db) -> tuple[int, int, int]:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in  # type: ignore[return-value]
                     ("customers", "orders", "interactions"))


def _load(db, args: argparse.Namespace) -> float:
    """Drop and refill the tables with generated rows through COPY; returns the seconds it took."""
    from sqlalchemy import text

    started = time.perf_counter()
    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    db.drop_all()
    db.create_all()
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        _copy(cursor, "customers", ["id", "name", "kind", "language", "tier", "is_prospect", "attributes",
                                    "created_at"],
              ((i, f"Customer {i}", "individual" if i % 10 else "business", "zh" if i % 2 else "en", "small",
                i % 50 == 0, "{}", now - timedelta(days=1000)) for i in range(1, args.customers + 1)))
        _copy(cursor, "customer_phones", ["customer_id", "e164", "label"],
              ((i, _phone(i), "mobile") for i in range(1, args.customers + 1)))
        _copy(cursor, "customer_emails", ["customer_id", "email"],
              ((i, f"c{i}@example.cn") for i in range(1, args.customers + 1)))
        buyers = [i for i in range(1, args.customers + 1) if i % 50]
        weights = [rng.paretovariate(1.2) for _ in buyers]  # a few heavy buyers: the pyramid's shape
        owners = rng.choices(buyers, weights=weights, k=args.orders)
        _copy(cursor, "orders", ["id", "customer_id", "number", "placed_at", "status", "total_cents", "currency"],
              ((n, owner, f"B{n:09d}", now - timedelta(minutes=rng.randint(0, 700 * 1440)),
                "delivered" if rng.random() < 0.95 else "cancelled", rng.randint(500, 200_000), "CNY")
               for n, owner in enumerate(owners, start=1)))
        _copy(cursor, "shipments", ["order_id", "carrier", "tracking_number", "status", "expected_at"],
              ((n, "SF Express", f"SF{n:010d}", "delivered", now) for n in range(1, args.orders + 1, 3)))
        contacts = rng.choices(range(1, args.customers + 1), k=args.interactions)
        _copy(cursor, "interactions", ["channel", "direction", "state", "customer_id", "language", "priority",
                                       "priority_reasons", "required_skills", "attributes", "created_at",
                                       "state_changed_at", "version"],
              ((("voice", "email", "chat")[k % 3], "inbound", "closed", cid, "en", 0, "[]", "[]", "{}",
                (t := now - timedelta(minutes=rng.randint(0, 700 * 1440))), t, 1)
               for k, cid in enumerate(contacts)))
        raw.commit()
        for table in ("customers", "orders", "interactions"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        raw.commit()
    finally:
        raw.close()
    with db.engine.begin() as conn:
        for table in TABLES_IN_LOAD_ORDER:
            conn.execute(text(f"ANALYZE {table}"))
    return time.perf_counter() - started


def _phone(i: int) -> str:
    return f"+86138{i:08d}"


def _copy(cursor, table: str, columns: list[str], rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _time_360(app, db, args: argparse.Namespace) -> list[float]:
    from app.crm.service import customer_360, identify

    rng = random.Random(args.seed + 1)
    region = app.extensions["desk.config"].crm.default_country
    timings = []
    for k in range(args.lookups + 50):
        phone = _phone(rng.randint(1, args.customers))
        started = time.perf_counter()
        found = identify(db.session, phone=phone, default_region=region, create_prospect=False)
        customer_360(db.session, found.customer_id)
        elapsed = (time.perf_counter() - started) * 1000
        db.session.rollback()  # a fresh transaction per screen-pop, as a web request has
        if k >= 50:  # the first calls warm caches and prepared plans
            timings.append(elapsed)
    return timings


def main(argv: list[str]) -> int:
    args = _args(argv)
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        print("error: DATABASE_URL: set it to a scratch PostgreSQL database, e.g. "
              "postgresql+psycopg://postgres@127.0.0.1:5432/bench_crm (its CRM tables are dropped and refilled)",
              file=sys.stderr)
        return 2
    app = _app(url)
    from app.crm.jobs import recompute_values
    from app.extensions import db

    with app.app_context():
        load_s = None
        if not (args.reuse and _counts(db) == (args.customers, args.orders, args.interactions)):
            load_s = _load(db, args)
        timings = _time_360(app, db, args)
        started = time.perf_counter()
        run = recompute_values(db.session, app.extensions["desk.config"], trigger="on_demand")
        recompute_s = time.perf_counter() - started
        customers, orders, interactions = _counts(db)
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    result = {"customers": customers, "orders": orders, "interactions": interactions,
              "p50_ms": round(statistics.median(timings), 3), "p99_ms": round(cuts[98], 3),
              "recompute_s": round(recompute_s, 2), "lookups": len(timings),
              "load_s": None if load_s is None else round(load_s, 1),
              "vip_revenue_share": round(next(r["revenue_share"] for r in run.pyramid["rows"]
                                              if r["tier"] == "vip"), 3)}
    if args.json:
        print(json.dumps(result))
    print(f"{'customers':<14}{customers:>12,}\n{'orders':<14}{orders:>12,}\n{'interactions':<14}{interactions:>12,}")
    print(f"360 view by phone: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms over {len(timings)} "
          "lookups (aim: p99 < 20 ms)")
    print(f"value recomputation: {recompute_s:.1f} s for {customers:,} customers (aim: < 120 s)")
    for row in run.pyramid["rows"]:
        print(f"  {row['tier']:<9}{row['customers']:>9,} customers {row['revenue_share'] * 100:6.1f}% of revenue")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
