"""``python -m bench screenpop [--json] [--agents 500] [--calls 500] [--rate 10] [--concurrency 0]``

Time from a caller's webhook to the agent's console receiving the offer with the customer's record.
Two web nodes (gunicorn, gevent, one worker each) and the router process (``python -m queues.router``)
share Redis (Socket.IO's message queue, the router's hint channel and lock) and the database (PostgreSQL
scratch database ``bench_screenpop`` when reachable, else a SQLite file). ``--agents`` agents are connected
as python-socketio clients, alternately to each node, and go available. Calls arrive open-loop at ``--rate``
calls per second (Poisson arrivals; 10/s is six times the peak a 500-agent floor sees with a
five-minute handle time), or, with ``--concurrency N``, closed-loop N at a time as fast as the desk
answers (a saturation test: its latency is mostly queueing). Each call is a signed
``/voice/incoming`` webhook from a known VIP customer (the demo IVR queues them at once), sent to
alternate nodes; the real router picks an agent and writes the offer; the figure covers webhook + queueing
+ routing hint over Redis + the router's decision and offer commit + screen-pop build + Redis fan-out +
delivery to the agent's socket on whichever node holds it. Each console then answers like an agent in a
hurry (accept, wrap up with a disposition), so agents come back and calls may outnumber them.
JSON fields: agents, nodes, calls, calls_per_s (offered load; 0 = closed loop), p50_ms, p99_ms, missed
(offers that never arrived; should be 0), cpu_ms_per_call (web nodes, router, database backends, and this
process's consoles and callers, while the calls ran), and the parts: webhook_p50/p99_ms (the webhook's own response
time), routing_p50/p99_ms (from the contact's ``queued`` transition to the router's offer decision).
Figures only; nothing asserted.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from bench.voice import _bench_config, _cpu_seconds, _free_port, _start_server, _stop

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-twilio-token"
ACCOUNT = "AC" + "b" * 32
SECRET = "bench-not-a-secret"
USER_AGENT = "bench-screenpop/1.0"
NODES = 2
ARRIVAL_TIMEOUT_S = 20.0  # after the last webhook; more than one offer lease, so a re-offer still counts late
ANSWERING_THREADS = int(os.environ.get("BENCH_ANSWERING_THREADS", "8"))


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench screenpop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON line with the result")
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")),
                        help="gevent worker processes per web node (the Procfile's WEB_CONCURRENCY)")
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second, open loop (Poisson)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="instead of --rate: calls in flight at once, closed loop (saturation)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_SCREENPOP_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_screenpop"))
    return parser.parse_args(argv)


def _database(url: str, scratch: Path) -> str:
    """The PostgreSQL scratch database when the server answers, else a SQLite file in ``scratch``."""
    try:
        from bench.voice import _ensure_database

        _ensure_database(url)
        return url
    except Exception as exc:  # no PostgreSQL here: say so and use SQLite
        print(f"note: PostgreSQL unavailable ({str(exc).splitlines()[0]}); using SQLite", file=sys.stderr)
        return f"sqlite:///{scratch / 'bench.db'}"


def _env(db_url: str, redis_url: str, config: Path, port: int) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=db_url, REDIS_URL=redis_url, CONFIG_PATH=str(config), SECRET_KEY=SECRET,
                PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=TOKEN,
                LOG_LEVEL="ERROR", DESK_DEV_TOOLS="0")


def _driver_app(db_url: str, redis_url: str, config: Path):
    from app import create_app

    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "SECRET_KEY": SECRET, "LOG_LEVEL": "ERROR",
           "PUBLIC_BASE_URL": "http://127.0.0.1", "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN}
    return create_app(str(config), env=env, overrides={"ROUTER_THREAD": False, "PERIODIC_THREAD": False})


def _prepare(app, agents: int, customers: int) -> tuple[list[int], list[tuple[int, str, str]]]:
    """Empty schema, ``agents`` agents and ``customers`` VIP customers, each with an order in transit."""
    from app.auth.models import AgentSkill, StaffUser
    from app.auth.passwords import hash_password
    from app.crm.models import Customer, CustomerPhone, Order, Shipment
    from app.db import utcnow
    from app.extensions import db

    with app.app_context():
        db.drop_all()
        db.create_all()
        password_hash = hash_password("bench-password")
        staff = [StaffUser(email=f"agent{n}@bench.desk", name=f"Agent {n}", password_hash=password_hash,
                           role="agent", skills=[AgentSkill(skill="vip", level=8)]) for n in range(agents)]
        db.session.add_all(staff)
        people = []
        for n in range(customers):
            customer = Customer(name=f"Customer {n}", tier="vip", language="en", attributes={})
            customer.phones = [CustomerPhone(e164=f"+86139{n:08d}")]
            customer.orders = [Order(number=f"B{n:06d}", placed_at=utcnow() - timedelta(days=2), status="shipped",
                                     total_cents=25_000, currency="CNY",
                                     shipments=[Shipment(carrier="SF Express", tracking_number=f"SF{n:08d}",
                                                         status="in_transit")])]
            people.append(customer)
        db.session.add_all(people)
        db.session.commit()
        result = [s.id for s in staff], [(c.id, c.name, c.phones[0].e164) for c in people]
        db.session.remove()
        return result


def _cookie(app, agent_id: int) -> str:
    """The session cookie a sign-in would set (same secret, same flask-login identifier)."""
    from flask import session
    from flask_login import login_user

    from app.auth.models import StaffUser
    from app.extensions import db

    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                  headers={"User-Agent": USER_AGENT}):
        login_user(db.session.get(StaffUser, agent_id))
        value = app.session_interface.get_signing_serializer(app).dumps(dict(session))
        db.session.remove()
    return f"{app.config['SESSION_COOKIE_NAME']}={value}"


class Console:
    """One agent's console: a python-socketio client that timestamps the first offer of each contact on
    arrival and hands it to the answering pool (accept, then wrap up)."""

    def __init__(self, url: str, cookie: str, arrivals: dict, lock: threading.Lock, answers: queue.Queue):
        import socketio

        self.sio = socketio.Client(reconnection=False)
        self.ready = threading.Event()
        self.sio.on("snapshot", lambda data=None: self.ready.set(), namespace="/agent")
        self.sio.on("offer", self._offer, namespace="/agent")
        self.url, self.cookie, self.arrivals, self.lock, self.answers = url, cookie, arrivals, lock, answers

    def _offer(self, data):
        at = time.perf_counter()
        has_record = bool(data.get("screenpop", {}).get("customer"))
        with self.lock:
            self.arrivals.setdefault(data["interaction_id"], (at, has_record))
        self.answers.put((self, data["offer_id"], data["interaction_id"]))

    def call(self, event: str, data: dict) -> dict:
        return self.sio.call(event, data, namespace="/agent", timeout=30) or {}

    def connect(self) -> None:
        self.sio.connect(self.url, namespaces=["/agent"], transports=["websocket"], wait_timeout=30,
                         headers={"Cookie": self.cookie, "User-Agent": USER_AGENT})
        if not self.ready.wait(30):
            raise RuntimeError("no snapshot from the console namespace within 30 s")
        if not self.call("presence", {"presence": "available"}).get("ok"):
            raise RuntimeError("the agent could not go available")


def _answering(answers: queue.Queue, disposition: str, stop: threading.Event, failures: list) -> None:
    """Answer offers as they come: accept, then complete the wrap-up (the agent is available again)."""
    while not stop.is_set():
        try:
            console, offer_id, interaction_id = answers.get(timeout=0.2)
        except queue.Empty:
            continue
        try:
            if console.call("accept", {"offer_id": offer_id}).get("ok"):
                console.call("wrap_up", {"interaction_id": interaction_id, "disposition": disposition})
        except Exception as exc:  # a slow ack under load: the router re-offers after the lease
            failures.append(repr(exc))


def _interaction_ids(app, call_sids: list[str]) -> dict[str, int]:
    from sqlalchemy import select

    from app.extensions import db
    from app.interactions.models import Interaction

    with app.app_context():
        try:
            rows = db.session.execute(select(Interaction.external_ref, Interaction.id).where(
                Interaction.channel == "voice", Interaction.external_ref.in_(call_sids))).all()
            return dict(rows)
        finally:
            db.session.remove()


def _webhook(port: int, call_sid: str, caller: str) -> int:
    import http.client
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    url = f"http://127.0.0.1:{port}/voice/incoming"
    form = {"CallSid": call_sid, "From": caller, "To": "+862100000000", "AccountSid": ACCOUNT, "CallStatus": "ringing"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/voice/incoming", body=urlencode(form), headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, form)})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _wait_until_serving(port: int, timeout_s: float = 90.0) -> None:
    """gunicorn accepts connections before its worker has built the app: wait for a real answer."""
    import http.client

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/login")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
        finally:
            conn.close()
    raise RuntimeError(f"the node on port {port} did not answer within {timeout_s} s")


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))]


def _run_calls(app, ports, people, calls, concurrency, arrivals, lock, rate=0.0, seed=11
               ) -> tuple[list[float], int, int, list[int]]:
    """Send the webhooks (open loop at ``rate`` per second, else ``concurrency`` at a time), then wait
    for every call's offer to arrive."""
    counter = itertools.count()
    sent: queue.Queue = queue.Queue()
    answered: list[float] = []  # webhook response times (list.append is atomic)

    def send(n: int) -> None:
        _customer_id, _name, phone = people[n % len(people)]
        sid = f"CA{time.time_ns():020x}{n:012x}"
        began = time.perf_counter()
        status = _webhook(ports[n % len(ports)], sid, phone)
        answered.append((time.perf_counter() - began) * 1000)
        sent.put((sid, began, status))

    def worker() -> None:
        while (n := next(counter)) < calls:
            send(n)

    if rate > 0:
        import random
        from concurrent.futures import ThreadPoolExecutor

        rng = random.Random(seed)
        with ThreadPoolExecutor(max_workers=64) as pool:
            due = time.perf_counter()
            for n in range(calls):
                due += rng.expovariate(rate)
                time.sleep(max(0.0, due - time.perf_counter()))
                pool.submit(send, n)
    else:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(concurrency, 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    done = [sent.get() for _ in range(sent.qsize())]
    errors = sum(1 for _sid, _began, status in done if status != 200)
    ids = _interaction_ids(app, [sid for sid, _began, status in done if status == 200])
    deadline = time.perf_counter() + ARRIVAL_TIMEOUT_S
    latencies: list[float] = []
    missed = 0
    for sid, began, _status in done:
        interaction_id = ids.get(sid)
        arrived = None
        while interaction_id is not None:
            with lock:
                arrived = arrivals.get(interaction_id)
            if arrived or time.perf_counter() > deadline:
                break
            time.sleep(0.01)
        if arrived and arrived[1]:
            latencies.append((arrived[0] - began) * 1000)
        else:
            missed += 1
    latencies.sort()
    if os.environ.get("BENCH_TRACE"):
        _write_trace(app, os.environ["BENCH_TRACE"], done, ids, arrivals, lock)
    return latencies, missed, errors, list(ids.values()), sorted(answered)


def _write_trace(app, path: str, done, ids: dict[str, int], arrivals: dict, lock) -> None:
    """Per call, on one clock (ms from the webhook being sent): queued (the contact's ``queued``
    transition), offered (the router's offer row), arrived (the console's event) -- to see which stage
    a slow call spent its time in."""
    to_wall = time.time() - time.perf_counter()
    queued, offered = _queued_and_offered(app, list(ids.values()))
    with open(path, "w") as out:
        for sid, began, _status in done:
            i = ids.get(sid)
            if i is None or i not in queued or i not in offered:
                continue
            with lock:
                arrived = arrivals.get(i)
            start = began + to_wall
            out.write(json.dumps({"id": i, "queued": round((queued[i].timestamp() - start) * 1000, 1),
                                  "offered": round((offered[i].timestamp() - start) * 1000, 1),
                                  "arrived": round((arrived[0] + to_wall - start) * 1000, 1) if arrived else None,
                                  "sent_at": round(start, 3)}) + "\n")


def _queued_and_offered(app, interaction_ids: list[int]) -> tuple[dict, dict]:
    """Per call: its first ``queued`` transition and its first offer row (database times)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.interactions.models import InteractionEvent
    from queues.models import Offer

    with app.app_context():
        try:
            queued = dict(db.session.execute(select(InteractionEvent.interaction_id, func.min(InteractionEvent.occurred_at))
                                             .where(InteractionEvent.interaction_id.in_(interaction_ids),
                                                    InteractionEvent.to_state == "queued")
                                             .group_by(InteractionEvent.interaction_id)).all())
            offered = dict(db.session.execute(select(Offer.interaction_id, func.min(Offer.created_at))
                                              .where(Offer.interaction_id.in_(interaction_ids))
                                              .group_by(Offer.interaction_id)).all())
        finally:
            db.session.remove()
    return queued, offered


def _routing_delays_ms(app, interaction_ids: list[int]) -> list[float]:
    """Per call: from its ``queued`` transition to its first offer row (the router's share), sorted."""
    queued, offered = _queued_and_offered(app, interaction_ids)
    return sorted((offered[i] - queued[i]).total_seconds() * 1000 for i in interaction_ids
                  if i in queued and i in offered)


def _cpu_snapshot(processes: dict[str, list[int]], database: str | None) -> dict[str, float]:
    """CPU seconds so far of each process group, the database backends and this process (the 500
    consoles and the callers): divided by calls, a cost that noise on the machine hardly moves."""
    import resource

    snapshot = {name: _cpu_seconds(pids) for name, pids in processes.items()}
    if database:
        snapshot["database"] = _cpu_seconds([], database)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    snapshot["bench"] = usage.ru_utime + usage.ru_stime
    return snapshot


def _start_router(env: dict[str, str]) -> subprocess.Popen:
    """The router process, as the Procfile runs it."""
    return subprocess.Popen([sys.executable, "-m", "queues.router"], cwd=REPO, env=env, start_new_session=True)


def main(argv: list[str]) -> int:
    args = _args(argv)
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    with tempfile.TemporaryDirectory(prefix="bench-screenpop-") as scratch:
        config = _bench_config(Path(scratch))
        db_url = _database(args.database_url, Path(scratch))
        app = _driver_app(db_url, args.redis_url, config)
        disposition = app.extensions["desk.config"].dispositions[0].code
        agent_ids, people = _prepare(app, args.agents, args.customers)
        ports = [_free_port() for _ in range(NODES)]
        servers = [_start_server(_env(db_url, args.redis_url, config, port), port, args.workers) for port in ports]
        servers.append(_start_router(_env(db_url, args.redis_url, config, ports[0])))
        for port in ports:
            _wait_until_serving(port)
        consoles: list[Console] = []
        stop, failures, answers = threading.Event(), [], queue.Queue()
        pool = [threading.Thread(target=_answering, args=(answers, disposition, stop, failures), daemon=True)
                for _ in range(ANSWERING_THREADS)]
        for thread in pool:
            thread.start()
        try:
            arrivals: dict[int, tuple[float, bool]] = {}
            lock = threading.Lock()
            for n, agent_id in enumerate(agent_ids):
                console = Console(f"http://127.0.0.1:{ports[n % NODES]}", _cookie(app, agent_id), arrivals, lock,
                                  answers)
                console.connect()
                consoles.append(console)
            processes = {"web": [s.pid for s in servers[:NODES]], "router": [servers[NODES].pid]}
            database = db_url.rsplit("/", 1)[-1] if db_url.startswith("postgresql") else None
            before = _cpu_snapshot(processes, database)
            # The load generator is the instrument, not the desk: 500 consoles in one process make its own
            # full garbage collections (every console stalled at once) part of the figures. Its collector
            # rests while calls are timed; the desk's processes keep theirs. Likewise its ~1,500 threads
            # (each console's reader and writer, the callers): a console's reader woken by an offer waits
            # for the interpreter lock up to the switch interval (5 ms) behind each busy thread, time no
            # agent's own browser would lose; a shorter interval hands it over sooner.
            gc.freeze()
            gc.disable()
            switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(0.0005)
            try:
                latencies, missed, errors, routed, webhooks = _run_calls(
                    app, ports, people, args.calls, args.concurrency, arrivals, lock,
                    rate=0.0 if args.concurrency else args.rate)
            finally:
                sys.setswitchinterval(switch_interval)
                gc.enable()
                gc.unfreeze()
            after = _cpu_snapshot(processes, database)
            cpu_ms = {name: round((after[name] - before[name]) * 1000 / max(args.calls, 1), 2) for name in after}
            routing = _routing_delays_ms(app, routed)
        finally:
            stop.set()
            for console in consoles:
                console.sio.disconnect()
            for server in servers:
                _stop(server)
    result = {"agents": args.agents, "nodes": NODES, "workers_per_node": args.workers, "calls": args.calls,
              "calls_per_s": 0.0 if args.concurrency else args.rate,
              "p50_ms": round(_percentile(latencies, 0.50), 2), "p99_ms": round(_percentile(latencies, 0.99), 2),
              "missed": missed, "webhook_errors": errors, "answer_errors": len(failures),
              "routing_p50_ms": round(_percentile(routing, 0.50), 2),
              "routing_p99_ms": round(_percentile(routing, 0.99), 2),
              "webhook_p50_ms": round(_percentile(webhooks, 0.50), 2),
              "webhook_p99_ms": round(_percentile(webhooks, 0.99), 2),
              "cpu_ms_per_call": cpu_ms,
              "database": db_url.split(":")[0], "offer_by": "router process (queues.router)"}
    if args.json:
        print(json.dumps(result))
    print(f"{'agents':>7} {'nodes':>5} {'calls':>6} {'p50_ms':>8} {'p99_ms':>8} {'missed':>6}")
    print(f"{result['agents']:>7} {result['nodes']:>5} {result['calls']:>6} {result['p50_ms']:>8} "
          f"{result['p99_ms']:>8} {result['missed']:>6}")
    return 0
