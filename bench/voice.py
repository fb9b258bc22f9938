"""``python -m bench voice [--json] [--levels 50,200] [--seconds 20] [--workers 2] [--statements]``

Simulated concurrent callers walk the demo IVR into a queue against the real app: gunicorn with gevent
workers on PostgreSQL (``--database-url``, default a scratch database ``bench_voice`` that is emptied).
Each caller dials, chooses English, asks for an order's status, keys the order number, asks for an
agent, waits two turns of the queue loop and hangs up -- eight signed webhooks per call -- then dials
again. For each level of concurrent callers it prints webhook requests per second and p50/p99 latency.
JSON fields per level: callers, requests_per_s, p50_ms, p99_ms, errors. Figures only; nothing asserted.
``--statements`` instead walks calls in-process one at a time and prints, per webhook, the SQL statements
sent and the server's CPU milliseconds (JSON fields: webhook, statements, cpu_ms) -- figures that move
little with the load of a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-twilio-token"
ACCOUNT = "AC" + "b" * 32
ORDER_NUMBER = "10023"


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench voice", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON line per level")
    parser.add_argument("--levels", default="50,200", help="concurrent callers per level, comma separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each level")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn gevent workers")
    parser.add_argument("--statements", action="store_true",
                        help="instead: SQL statements and server CPU ms per webhook, in-process, one call at a time")
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_VOICE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_voice"))
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


def _env(url: str, config: Path, port: int) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=url, CONFIG_PATH=str(config), SECRET_KEY="bench-not-a-secret",
                PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=TOKEN,
                LOG_LEVEL="ERROR", DESK_DEV_TOOLS="0")


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
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers), "--worker-connections", "1000",
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


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- the callers (run in a gevent-patched child process) ------------------------------------------------

def _drive(port: int, callers: int, warmup_s: float, seconds: float) -> dict:
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

    def post(conn: http.client.HTTPConnection, url: str, form: dict[str, str]) -> ET.Element | None:
        body = urlencode(form)
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": validator.compute_signature(url, form)}
        began = time.monotonic()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            text, ok = b"", False
        ended = time.monotonic()
        if window[0] <= began and ended <= window[1]:
            latencies.append(ended - began)
            if not ok:
                errors[0] += 1
        return ET.fromstring(text) if ok and text else None

    def call() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < window[1]:
            sid = f"CA{next(sids):032x}"
            form = {"CallSid": sid, "From": f"+86138{random.randrange(10**8):08d}", "To": "+862100000000",
                    "AccountSid": ACCOUNT}
            root = post(conn, f"{base}/voice/incoming", form)
            for digits in ("1", "1", f"{ORDER_NUMBER}#", "0"):
                gather = root.find("Gather") if root is not None else None
                if gather is None:
                    break
                root = post(conn, gather.get("action"), dict(form, Digits=digits))
            redirect = root.find("Redirect") if root is not None else None
            for _ in range(2):
                if redirect is None:
                    break
                root = post(conn, redirect.text, form)
                redirect = root.find("Redirect") if root is not None else None
            post(conn, f"{base}/voice/status", dict(form, CallStatus="completed", CallDuration="40"))
        conn.close()

    gevent.joinall([gevent.spawn(call) for _ in range(callers)])
    latencies.sort()
    return {"count": len(latencies), "errors": errors[0], "seconds": seconds,
            "p50_s": latencies[len(latencies) // 2] if latencies else None,
            "p99_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None}


def _drive_in_child(port: int, callers: int, warmup_s: float, seconds: float) -> dict:
    code = ("from gevent import monkey; monkey.patch_all()\n"
            "import json, sys\nfrom bench.voice import _drive\n"
            f"print(json.dumps(_drive({port}, {callers}, {warmup_s}, {seconds})))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=warmup_s + seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"the caller simulation failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- statements per webhook (in-process, one call at a time) ----------------------------------------------

def _count_statements(url: str, config: Path, calls: int = 20) -> dict[str, tuple[float, float]]:
    """Walk ``calls`` calls through the same eight webhooks in-process (Flask test client, the same
    database), one at a time: the SQL statements each webhook sends (BEGIN/COMMIT excepted) and the CPU
    time this process spends on it (the server's own work, without the database's or the load
    generator's, so it moves little with the machine's load). The first call warms the caches and is
    not counted. Returns {webhook: (mean statements, mean CPU ms)}."""
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

    def post(name: str, target: str, form: dict[str, str], counts: dict[str, list[tuple[int, float]]] | None):
        parts = urlsplit(target)
        seen.clear()
        began = time.process_time()
        response = client.post(parts.path + (f"?{parts.query}" if parts.query else ""), data=form,
                               headers={"X-Twilio-Signature": validator.compute_signature(target, form)})
        if response.status_code != 200:
            raise RuntimeError(f"{name}: HTTP {response.status_code}")
        if counts is not None:
            counts.setdefault(name, []).append((len(seen), (time.process_time() - began) * 1000))
        return ET.fromstring(response.data) if response.data else None

    counts: dict[str, list[tuple[int, float]]] = {}
    for n in range(calls + 1):
        record = counts if n else None
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
    return {name: (sum(n for n, _ in values) / len(values), sum(ms for _, ms in values) / len(values))
            for name, values in counts.items()}



def _print_statements(found: dict[str, tuple[float, float]], as_json: bool) -> int:
    if as_json:
        for name, (statements, cpu_ms) in found.items():
            print(json.dumps({"webhook": name, "statements": round(statements, 2), "cpu_ms": round(cpu_ms, 2)}))
    total_statements = sum(n for n, _ in found.values())
    total_ms = sum(ms for _, ms in found.values())
    print(f"\nvoice webhooks in-process, one call at a time: {total_statements:g} statements and "
          f"{total_ms:.1f} ms of server CPU per call")
    print(f"{'webhook':<18} {'statements':>10} {'cpu ms':>8}")
    for name, (statements, cpu_ms) in found.items():
        print(f"{name:<18} {statements:>10g} {cpu_ms:>8.2f}")
    return 0

def main(argv: list[str]) -> int:
    args = _args(argv)
    levels = [int(level) for level in args.levels.split(",") if level.strip()]
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        config = _bench_config(Path(tmp))
        _ensure_database(args.database_url)
        _prepare(args.database_url, config, port)
        if args.statements:
            return _print_statements(_count_statements(args.database_url, config), args.json)
        server = _start_server(_env(args.database_url, config, port), port, args.workers)
        results = []
        try:
            _drive_in_child(port, 2 * args.workers, 0, 8)  # first requests build each worker's app: not measured
            for callers in levels:
                measured = _drive_in_child(port, callers, args.warmup, args.seconds)
                result = {"callers": callers, "requests_per_s": round(measured["count"] / measured["seconds"], 1),
                          "p50_ms": round(measured["p50_s"] * 1000, 1) if measured["p50_s"] is not None else None,
                          "p99_ms": round(measured["p99_s"] * 1000, 1) if measured["p99_s"] is not None else None,
                          "errors": measured["errors"]}
                results.append(result)
                if args.json:
                    print(json.dumps(result), flush=True)
        finally:
            _stop(server)
    print(f"\nvoice webhooks: gunicorn gevent x{args.workers} on PostgreSQL, {args.seconds:g} s per level")
    print(f"{'callers':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(f"{r['callers']:>8} {r['requests_per_s']:>8} {r['p50_ms']!s:>8} {r['p99_ms']!s:>8} {r['errors']:>7}")
    return 0
