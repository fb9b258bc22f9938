"""``python -m bench voice [--json] [--levels 50,200] [--offered 300] [--rates 300] [--saturation 50] [--seconds 20] [--workers 2] [--statements]``

Simulated callers walk the demo IVR into a queue against the real app, shaped as the Procfile runs it:
gunicorn with gevent workers (``--workers``, one per core) and the router process (``python -m queues.router``)
sharing PostgreSQL (``--database-url``, default a scratch database ``bench_voice`` that is emptied) and
Redis (``--redis-url``, default db 11, flushed: the router's hints and lock, job queue, Socket.IO fan-out).
Each caller dials, chooses English, asks for an order's status, keys the order number, asks for an
agent, waits two turns of the queue loop and hangs up -- eight signed webhooks per call.

Three kinds of level, each measured for ``--seconds`` after ``--warmup``; every JSON line names its ``mode``:

- ``--levels`` (mode ``listening``, the issue's figures): N concurrent callers who, like real callers,
  listen to each answer before the next webhook. Each caller's webhooks come at random (exponential gaps
  of mean N / ``--offered`` seconds, counted from the start of the previous webhook), so the N callers
  together offer ``--offered`` webhooks per second (300, the aim's rate); a caller whose answer comes
  later than its next webhook is due sends it as soon as the answer arrives (it cannot press a key in a
  prompt it has not heard), so a slow desk shows as a rate under the offered one. A webhook the server's
  idle keep-alive timeout cut off is sent again on a new connection, as any HTTP client does (its
  latency counts from the first try; ``resent`` counts them: the server keeps idle connections 75 s
  as the Procfile's does, ``BENCH_VOICE_KEEP_ALIVE`` seconds if set). Its p99 is the figure for the aim: at least 300 requests/s with
  p99 under 100 ms at 50 and 200 concurrent callers.
  JSON: mode, callers, offered, requests_per_s, p50_ms, p99_ms, errors.
- ``--rates`` (mode ``open``): open loop. Calls arrive at random (Poisson) so that their webhooks come at
  the given rate per second, whatever the desk's speed -- as Twilio's traffic does; ``callers`` is the
  mean number of calls in progress. JSON: mode, rate, callers, requests_per_s, p50_ms, p99_ms, errors.
- ``--saturation`` (mode ``saturation``): closed loop, N callers each sending its next webhook as soon
  as the last is answered (no time to listen): its requests/s is the desk's capacity; its latency is
  mostly queueing (Little's law: N callers at X requests/s wait N/X seconds on average), so p99 under
  100 ms is out of reach there by construction. JSON: mode, callers, requests_per_s, p50_ms, p99_ms, errors.

Also printed: CPU milliseconds per webhook spent by the web workers, the router, the database and the
callers themselves (the load generator shares the cores) during the measured seconds (``cpu_ms``), which
say where the machine's time went; the database connections opened meanwhile (``connections_opened``: a
pool that opens and closes connections under load shows here, and the database's CPU of a backend gone
before the level ended is missing from ``cpu_ms``); the machine's load average as the level began
(``load_1m``) and the cores the machine's other processes kept busy meanwhile (``others_cores``): a
shared machine's other work moves every wall-clock figure. Figures only; nothing
asserted. ``BENCH_TRACE=path`` appends one JSON line per webhook (level, path, send time, latency).

``--statements`` instead walks calls in-process one at a time and prints, per webhook, the SQL statements
sent, the server's CPU milliseconds and the Python function calls the app makes (JSON fields: webhook,
statements, cpu_ms, py_calls) -- figures that move little (cpu_ms) or not at all (statements, py_calls)
with the load of a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-twilio-token"
ACCOUNT = "AC" + "b" * 32
ORDER_NUMBER = "10023"
WEBHOOKS_PER_CALL = 8  # incoming, four gathers, two wait turns, the status callback


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench voice", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON line per level")
    parser.add_argument("--levels", default="50,200",
                        help="listening callers: concurrent callers per level, comma separated ('' for none)")
    parser.add_argument("--offered", type=float, default=300.0,
                        help="webhooks per second the listening callers of a level offer together")
    parser.add_argument("--rates", default="300",
                        help="open loop: webhooks per second per level, comma separated ('' for none)")
    parser.add_argument("--saturation", default="50",
                        help="closed loop, no listening: concurrent callers per level, comma separated ('' for none)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each level")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn gevent workers (one per core)")
    parser.add_argument("--no-router", action="store_true", help="do not start the router process")
    parser.add_argument("--statements", action="store_true",
                        help="instead: SQL statements and server CPU ms per webhook, in-process, one call at a time")
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_VOICE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_voice"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_VOICE_REDIS_URL", "redis://127.0.0.1:6379/11"))
    return parser.parse_args(argv)


# --- set-up: a scratch database, an always-open copy of the demo config, the server ---------------------

def _ensure_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).scalar():
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def _bench_config(directory: Path) -> Path:
    """The desk's config.yaml with the IVR's hours checks on the always-open calendar, so every run
    walks the same path whatever the hour."""
    import yaml

    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    calendars = raw.setdefault("calendars", {})
    calendars["bench_always"] = {"timezone": "UTC", "weekly": {d: ["00:00-24:00"] for d in
                                                               ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    for node in raw["ivr"]["nodes"].values():
        if node.get("type") == "hours":
            node["calendar"] = "bench_always"
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _env(url: str, config: Path, port: int, redis_url: str | None = None) -> dict[str, str]:
    """The processes' environment. With ``redis_url`` the desk runs as in production (router, periodic
    jobs and workers in their own processes); without it every web worker would run an embedded router
    and periodic thread of its own -- the single-process demo shape, not what a deployment runs."""
    env = dict(os.environ, DATABASE_URL=url, CONFIG_PATH=str(config), SECRET_KEY="bench-not-a-secret",
               PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=TOKEN,
               LOG_LEVEL="ERROR", DESK_DEV_TOOLS="0")
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _prepare(url: str, config: Path, port: int) -> None:
    """Empty schema plus one customer with order 10023 (read back by the IVR)."""
    from app import create_app
    from app.extensions import db

    env = _env(url, config, port)
    app = create_app(str(config), env={k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "PUBLIC_BASE_URL",
                                                           "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "LOG_LEVEL")},
                     overrides={"ROUTER_THREAD": False, "PERIODIC_THREAD": False})
    with app.app_context():
        from app.crm.models import Customer, CustomerPhone, Order
        from app.db import utcnow

        db.drop_all()
        db.create_all()
        customer = Customer(name="Bench Customer", tier="ordinary", language="en", attributes={})
        customer.phones = [CustomerPhone(e164="+8613900000001")]
        db.session.add(customer)
        db.session.flush()
        db.session.add(Order(customer_id=customer.id, number=ORDER_NUMBER, placed_at=utcnow(), status="shipped",
                             total_cents=12_000, currency="CNY"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    """gunicorn as the Procfile's ``web``: gevent workers (each one process on one core; the greenlets
    of up to ``--worker-connections`` callers share it and its database pool, which queues them for a
    connection when more transactions are open than the pool holds), idle connections kept 75 s."""
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers), "--worker-connections", "1000",
               "--keep-alive", os.environ.get("BENCH_VOICE_KEEP_ALIVE", "75"),
               "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "app.wsgi:app"]
    server = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("gunicorn did not start listening within 60 s")


def _start_router(env: dict[str, str]) -> subprocess.Popen:
    """The router process, as the Procfile runs it (it queues nothing here: no agent is signed in)."""
    return subprocess.Popen([sys.executable, "-m", "queues.router"], cwd=REPO, env=env, start_new_session=True)


def _cpu_seconds(pids: list[int], database: str | None = None) -> float:
    """User + system CPU seconds of ``pids`` and their children -- or, with ``database``, of the
    PostgreSQL backends serving it -- from /proc (0 where it cannot be read)."""
    wanted, total = set(pids), 0
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rfind(")") + 2:].split()  # state, ppid, ... utime is the 12th, stime the 13th
            if database is None:
                if int(entry.name) not in wanted and int(fields[1]) not in wanted:
                    continue
            else:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").split()
                if not command or command[0] != b"postgres:" or database.encode() not in command:
                    continue
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def _machine_cpu_seconds() -> float:
    """CPU seconds every process of the machine has spent (user, nice, system, irq, softirq, steal), from
    /proc/stat: what is left after the bench's own parts is the other work sharing the cores."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _connections_opened(url: str) -> int:
    """Connections PostgreSQL has accepted to the bench's database so far (``pg_stat_database.sessions``):
    a pool that opens and closes connections under load -- each a backend forked, its caches cold, its
    prepared statements gone -- shows here. -1 where the server does not count them (before PostgreSQL 14)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    target = make_url(url)
    engine = create_engine(target.set(database="postgres"), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT sessions FROM pg_stat_database WHERE datname = :n"),
                                 {"n": target.database}).scalar()
    except Exception:  # noqa: BLE001 - a figure, not a requirement: an older server has no such column
        return -1
    finally:
        engine.dispose()
    return int(found or 0)


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- the callers (run in a gevent-patched child process) ------------------------------------------------

def _drive(port: int, callers: int, warmup_s: float, seconds: float, rate: float = 0.0,
           listen_s: float = 0.0) -> dict:
    """``callers`` callers, each on its own connection, walking call after call: with ``listen_s``, each
    listens before its next webhook (exponential gaps of mean ``listen_s`` between the starts of its
    webhooks, never before the last answer came); without, back to back (closed loop). Or, with ``rate``,
    open loop: calls arrive at random (exponential gaps) so that their webhooks come at ``rate`` per
    second on average, each call on its own connection. Latencies count for requests that start and end
    inside the measured window. The load generator's own collector rests while they are timed (one
    full collection among a few hundred callers stalls every one of them at once, and would show as the
    desk's latency)."""
    import gc
    import http.client
    import itertools
    import random
    import xml.etree.ElementTree as ET
    from urllib.parse import urlencode, urlsplit

    import gevent
    from twilio.request_validator import RequestValidator

    base = f"http://127.0.0.1:{port}"
    validator = RequestValidator(TOKEN)
    sids = itertools.count(random.randrange(1 << 40))
    started = time.monotonic()
    window = (started + warmup_s, started + warmup_s + seconds)
    latencies: list[float] = []
    errors = [0]
    sent = [0]
    resent = [0]
    active = [0]
    samples: list[int] = []
    trace: list[tuple[str, float, float, bool]] = []  # BENCH_TRACE: (path, began, seconds, ok) per webhook

    def post(conn: http.client.HTTPConnection, url: str, form: dict[str, str],
             pace: Callable[[], None] | None = None) -> ET.Element | None:
        if pace is not None:
            pace()
        body = urlencode(form)
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": validator.compute_signature(url, form)}
        began = time.monotonic()
        for _attempt in (1, 2):
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                text = response.read()
                ok = response.status == 200
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed the kept-alive connection while the caller listened (gunicorn keeps an
                # idle one 2 s): sent again on a new connection, as any HTTP client does
                conn.close()
                text, ok = b"", False
                resent[0] += 1
            except (OSError, http.client.HTTPException):
                conn.close()
                text, ok = b"", False
                break
        ended = time.monotonic()
        sent[0] += 1
        trace.append((parts.path, began, ended - began, ok))
        if window[0] <= began and ended <= window[1]:
            latencies.append(ended - began)
            if not ok:
                errors[0] += 1
        return ET.fromstring(text) if ok and text else None

    def one_call(conn: http.client.HTTPConnection, pace: Callable[[], None] | None = None) -> None:
        sid = f"CA{next(sids):032x}"
        form = {"CallSid": sid, "From": f"+86138{random.randrange(10**8):08d}", "To": "+862100000000",
                "AccountSid": ACCOUNT}
        root = post(conn, f"{base}/voice/incoming", form, pace)
        for digits in ("1", "1", f"{ORDER_NUMBER}#", "0"):
            gather = root.find("Gather") if root is not None else None
            if gather is None:
                break
            root = post(conn, gather.get("action"), dict(form, Digits=digits), pace)
        redirect = root.find("Redirect") if root is not None else None
        for _ in range(2):
            if redirect is None:
                break
            root = post(conn, redirect.text, form, pace)
            redirect = root.find("Redirect") if root is not None else None
        post(conn, f"{base}/voice/status", dict(form, CallStatus="completed", CallDuration="40"), pace)

    def listening(seed: int) -> Callable[[], None] | None:
        """A caller's pace: wait until its next webhook is due (exponential gaps of mean ``listen_s``
        from the start of the last one), then schedule the one after."""
        if listen_s <= 0:
            return None
        rng = random.Random(seed)
        due = [time.monotonic() + rng.expovariate(1 / listen_s)]  # callers start spread out, not at once

        def pace() -> None:
            gevent.sleep(max(0.0, due[0] - time.monotonic()))
            due[0] = time.monotonic() + rng.expovariate(1 / listen_s)  # this webhook starts now

        return pace

    def caller(seed: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        pace = listening(seed)
        while time.monotonic() < window[1]:
            one_call(conn, pace)
        conn.close()

    def arriving_call() -> None:
        active[0] += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            one_call(conn)
        finally:
            conn.close()
            active[0] -= 1

    def sampler() -> None:
        while time.monotonic() < window[1]:
            if time.monotonic() >= window[0]:
                samples.append(active[0])
            gevent.sleep(0.05)

    gc.freeze()
    gc.disable()
    cpu_before = time.process_time()
    try:
        if rate > 0:
            calls_per_s = rate / WEBHOOKS_PER_CALL
            rng = random.Random(7)
            greenlets = [gevent.spawn(sampler)]
            due = time.monotonic()
            while due < window[1]:
                gevent.sleep(max(0.0, due - time.monotonic()))
                greenlets.append(gevent.spawn(arriving_call))
                due += rng.expovariate(calls_per_s)
            gevent.joinall(greenlets, timeout=120)
        else:
            gevent.joinall([gevent.spawn(caller, seed) for seed in range(callers)])
    finally:
        gc.enable()
        gc.unfreeze()
    callers_cpu_s = time.process_time() - cpu_before
    latencies.sort()
    if os.environ.get("BENCH_TRACE"):
        _write_trace(Path(os.environ["BENCH_TRACE"]), trace, window[0], f"{callers}:{rate:g}:{listen_s:g}")
    return {"count": len(latencies), "errors": errors[0], "seconds": seconds, "sent": sent[0], "resent": resent[0], "cpu_s": callers_cpu_s,
            "callers": round(sum(samples) / len(samples), 1) if samples else callers,
            "p50_s": latencies[len(latencies) // 2] if latencies else None,
            "p99_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None}


def _write_trace(path: Path, trace: list[tuple[str, float, float, bool]], measured_from: float, level: str) -> None:
    """Append one JSON line per webhook of a level: its path, when it was sent (seconds into the measured
    window, and wall-clock time to set beside the desk's DESK_GC_LOG lines), its latency and whether it
    was answered 200 -- to see whether a latency tail is one kind of webhook or moments of the run."""
    to_wall = time.time() - time.monotonic()
    with path.open("a") as out:
        for webhook, began, seconds, ok in trace:
            out.write(json.dumps({"level": level, "webhook": webhook, "t": round(began - measured_from, 4),
                                  "wall": round(began + to_wall, 4), "ms": round(seconds * 1000, 2), "ok": ok})
                      + "\n")


def _drive_in_child(port: int, callers: int, warmup_s: float, seconds: float, rate: float = 0.0,
                    listen_s: float = 0.0) -> dict:
    code = ("from gevent import monkey; monkey.patch_all()\n"
            "import json, sys\nfrom bench.voice import _drive\n"
            f"print(json.dumps(_drive({port}, {callers}, {warmup_s}, {seconds}, {rate}, {listen_s})))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=warmup_s + seconds + 180)
    if done.returncode != 0:
        raise RuntimeError(f"the caller simulation failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- statements per webhook (in-process, one call at a time) ----------------------------------------------

def _count_statements(url: str, config: Path, calls: int = 50,
                      profiled_calls: int = 5) -> dict[str, tuple[float, float, float]]:
    """Walk ``calls`` calls through the same eight webhooks in-process (Flask test client, the same
    database), one at a time: the SQL statements each webhook sends (BEGIN/COMMIT excepted) and the CPU
    time this process spends on it (the server's own work, without the database's or the load
    generator's). Then ``profiled_calls`` more under cProfile, counting the Python function calls the
    app makes per webhook (the test client's own excepted): a figure the machine's load cannot move at
    all, for judging a change on a busy shared machine. The first call warms the caches and is not
    counted. Returns {webhook: (mean statements, median CPU ms -- a burst from another process moves a
    median less than a mean --, mean Python function calls)}."""
    import cProfile
    import pstats
    import xml.etree.ElementTree as ET
    from urllib.parse import urlsplit

    from sqlalchemy import event
    from twilio.request_validator import RequestValidator

    from app import create_app
    from app.extensions import db

    port = 5000
    env = _env(url, config, port)
    app = create_app(str(config), env={k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "PUBLIC_BASE_URL",
                                                           "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "LOG_LEVEL")},
                     overrides={"ROUTER_THREAD": False, "PERIODIC_THREAD": False})
    validator, client, base = RequestValidator(TOKEN), app.test_client(), f"http://127.0.0.1:{port}"
    seen: list[str] = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    profiler: list[cProfile.Profile] = []
    served = app.wsgi_app

    def profiled_app(environ, start_response):
        if not profiler:
            return served(environ, start_response)
        profiler[0].enable()
        try:
            return list(served(environ, start_response))
        finally:
            profiler[0].disable()

    app.wsgi_app = profiled_app
    timed: dict[str, list[tuple[int, float]]] = {}
    py_calls: dict[str, list[int]] = {}

    def post(name: str, target: str, form: dict[str, str], record: str):
        parts = urlsplit(target)
        seen.clear()
        if record == "profile":
            profiler[:] = [cProfile.Profile()]
        began = time.process_time()
        response = client.post(parts.path + (f"?{parts.query}" if parts.query else ""), data=form,
                               headers={"X-Twilio-Signature": validator.compute_signature(target, form)})
        spent_ms = (time.process_time() - began) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{name}: HTTP {response.status_code}")
        if record == "time":
            timed.setdefault(name, []).append((len(seen), spent_ms))
        elif record == "profile":
            py_calls.setdefault(name, []).append(pstats.Stats(profiler.pop()).total_calls)
        return ET.fromstring(response.data) if response.data else None

    for n in range(1 + calls + profiled_calls):
        record = "warm" if n == 0 else "time" if n <= calls else "profile"
        form = {"CallSid": f"CA{n + 1:032x}", "From": f"+86137{n:08d}", "To": "+862100000000", "AccountSid": ACCOUNT}
        root = post("incoming", f"{base}/voice/incoming", form, record)
        for name, digits in (("gather language", "1"), ("gather menu", "1"), ("gather order", f"{ORDER_NUMBER}#"),
                             ("gather agent", "0")):
            root = post(name, root.find("Gather").get("action"), dict(form, Digits=digits), record)
        for name in ("wait (announce)", "wait (quiet)"):
            root = post(name, root.find("Redirect").text, form, record)
        post("status", f"{base}/voice/status", dict(form, CallStatus="completed", CallDuration="40"), record)
    with app.app_context():
        db.engine.dispose()
    return {name: (sum(n for n, _ in values) / len(values), statistics.median(ms for _, ms in values),
                   sum(py_calls.get(name, [0])) / max(len(py_calls.get(name, [])), 1))
            for name, values in timed.items()}


def _print_statements(found: dict[str, tuple[float, float, float]], as_json: bool) -> int:
    if as_json:
        for name, (statements, cpu_ms, py_calls) in found.items():
            print(json.dumps({"webhook": name, "statements": round(statements, 2), "cpu_ms": round(cpu_ms, 2),
                              "py_calls": round(py_calls)}))
    total_statements = sum(n for n, _, _ in found.values())
    total_ms = sum(ms for _, ms, _ in found.values())
    total_calls = sum(c for _, _, c in found.values())
    print(f"\nvoice webhooks in-process, one call at a time: {total_statements:g} statements, "
          f"{total_ms:.1f} ms of server CPU and {total_calls:,.0f} Python function calls per call")
    print(f"{'webhook':<18} {'statements':>10} {'cpu ms':>8} {'py calls':>9}")
    for name, (statements, cpu_ms, py_calls) in found.items():
        print(f"{name:<18} {statements:>10g} {cpu_ms:>8.2f} {py_calls:>9,.0f}")
    return 0


# --- the server under load ------------------------------------------------------------------------------

def _level(port: int, args: argparse.Namespace, processes: dict[str, list[int]], database: str, *,
           mode: str, callers: int = 0, rate: float = 0.0) -> dict:
    """Run one level and put it in the JSON shape, with the CPU each part spent per webhook sent (the
    callers' own too: the load generator shares the machine's cores with the desk), the database
    connections opened meanwhile and the machine's load average as the level began."""
    listen_s = callers / args.offered if mode == "listening" else 0.0
    load_1m = os.getloadavg()[0]
    before = {name: _cpu_seconds(pids) for name, pids in processes.items()}
    before["database"] = _cpu_seconds([], database)
    opened = _connections_opened(args.database_url)
    machine_before, began = _machine_cpu_seconds(), time.monotonic()
    measured = _drive_in_child(port, callers, args.warmup, args.seconds, rate, listen_s)
    machine_s, elapsed_s = _machine_cpu_seconds() - machine_before, time.monotonic() - began
    sent = max(measured["sent"], 1)
    cpu_ms = {name: round((_cpu_seconds(pids) - before[name]) * 1000 / sent, 2) for name, pids in processes.items()}
    cpu_ms["database"] = round((_cpu_seconds([], database) - before["database"]) * 1000 / sent, 2)
    cpu_ms["callers"] = round(measured["cpu_s"] * 1000 / sent, 2)
    ours_s = sum(cpu_ms.values()) * sent / 1000
    others_cores = max(0.0, machine_s - ours_s) / elapsed_s  # the other work on the machine meanwhile
    opened = _connections_opened(args.database_url) - opened if opened >= 0 else None
    result: dict = {"mode": mode}
    result.update({"rate": rate} if mode == "open" else {})
    result["callers"] = measured["callers"]
    result.update({"offered": args.offered} if mode == "listening" else {})
    result.update({"requests_per_s": round(measured["count"] / measured["seconds"], 1),
                   "p50_ms": round(measured["p50_s"] * 1000, 1) if measured["p50_s"] is not None else None,
                   "p99_ms": round(measured["p99_s"] * 1000, 1) if measured["p99_s"] is not None else None,
                   "errors": measured["errors"], "resent": measured["resent"], "cpu_ms": cpu_ms,
                   "connections_opened": opened,
                   "load_1m": round(load_1m, 2), "others_cores": round(others_cores, 2)})
    return result


def _plan(args: argparse.Namespace) -> list[dict]:
    """The levels in the order they run: the listening callers (the issue's figures) first."""
    def numbers(raw: str, kind: type) -> list:
        return [kind(value) for value in raw.split(",") if value.strip()]

    return ([{"mode": "listening", "callers": n} for n in numbers(args.levels, int)]
            + [{"mode": "open", "rate": rate} for rate in numbers(args.rates, float)]
            + [{"mode": "saturation", "callers": n} for n in numbers(args.saturation, int)])


def _label(result: dict) -> str:
    if result["mode"] == "open":
        return f"open {result['rate']:g}/s"
    if result["mode"] == "listening":
        return f"listening {result['offered']:g}/s"
    return "saturation"


def main(argv: list[str]) -> int:
    args = _args(argv)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        config = _bench_config(Path(tmp))
        _ensure_database(args.database_url)
        _prepare(args.database_url, config, port)
        if args.statements:
            return _print_statements(_count_statements(args.database_url, config), args.json)
        import redis
        from sqlalchemy.engine import make_url

        redis.Redis.from_url(args.redis_url).flushdb()
        env = _env(args.database_url, config, port, args.redis_url)
        server = _start_server(env, port, args.workers)
        router = None if args.no_router else _start_router(env)
        processes = {"web": [server.pid]} | ({"router": [router.pid]} if router else {})
        database = make_url(args.database_url).database
        results = []
        try:
            _drive_in_child(port, 2 * args.workers, 0, 8)  # first requests build each worker's app: not measured
            for level in _plan(args):
                result = _level(port, args, processes, database, **level)
                results.append(result)
                if args.json:
                    print(json.dumps(result), flush=True)
        finally:
            if router is not None:
                _stop(router)
            _stop(server)
    print(f"\nvoice webhooks: gunicorn gevent x{args.workers}{' + router' if not args.no_router else ''} on "
          f"PostgreSQL and Redis, {args.seconds:g} s per level; cpu ms per webhook sent")
    print(f"{'level':>16} {'callers':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'opened':>7} "
          f"{'load':>5} {'others':>6}  cpu ms")
    for r in results:
        cpu = " ".join(f"{name} {ms}" for name, ms in r["cpu_ms"].items())
        print(f"{_label(r):>16} {r['callers']!s:>8} {r['requests_per_s']:>8} {r['p50_ms']!s:>8} {r['p99_ms']!s:>8} "
              f"{r['errors']:>7} {r['connections_opened']!s:>7} {r['load_1m']:>5} {r['others_cores']:>6}  {cpu}")
    return 0
