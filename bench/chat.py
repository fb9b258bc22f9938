"""``python -m bench chat [--json] [--customers 500] [--agents 100] [--seconds 30] [--rate 0.2] [--workers 2]``

Customer-to-agent chat latency through the real server: gunicorn (gevent, the Procfile's ``web``; one worker per core by default) on
PostgreSQL (scratch database ``bench_chat``; a SQLite file when PostgreSQL is unreachable) and Redis
(Socket.IO's message queue). ``--customers`` python-socketio clients start chats on ``/customer`` and
``--agents`` clients sign in to the agent console's ``/agent`` namespace; every chat is given to an agent
(round-robin, as the router would -- its own decision time is ``bench routing``), then each customer
sends ``--rate`` messages per second (default 0.2: 20 messages/s per 100 chats) for ``--seconds``.
Each message carries its send time; latency is the time until the agent's socket receives it (the
path: socket event -> rate limit -> stored in PostgreSQL -> commit -> Redis fan-out -> agent's room).
JSON fields: customers, agents, messages, messages_per_s, p50_ms, p99_ms, ack_p99_ms, lost (acked by the
server but never delivered to the agent; must be 0), cpu_ms_per_message (CPU of the web workers and of
this process's clients while messages were sent: where the machine's time went).
``BENCH_TRACE=path`` writes each message's send time, latency and acknowledgement time (JSON lines).
Figures only; nothing asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.screenpop import USER_AGENT as CONSOLE_AGENT, _cookie, _database, _free_port
from bench.voice import _stop

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-chat-not-a-secret"
DRAIN_S = 5.0


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON line with the result")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=0.2, help="messages per second per customer")
    parser.add_argument("--workers", type=int, default=2,
                        help="gunicorn gevent workers, one per core (websocket-only clients need no stickiness)")
    parser.add_argument("--pool", type=int, default=0,
                        help="database pool size for the server (0: the desk's own setting)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_CHAT_REDIS_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_CHAT_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_chat"))
    return parser.parse_args(argv)


def _config(directory: Path) -> Path:
    """The desk's config with every queue always open and the chat limits above the benchmark's rate."""
    import yaml

    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw.setdefault("calendars", {})["bench_always"] = {
        "timezone": "UTC", "weekly": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    for queue in raw["routing"]["queues"]:
        queue["calendar"] = "bench_always"
    chat = raw.setdefault("chat", {})
    chat.update(max_wait_s=3600, leave_grace_s=3600, messages_per_minute=600, starts_per_address=100_000)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _env(db_url: str, redis_url: str, config: Path, port: int) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=db_url, REDIS_URL=redis_url, CONFIG_PATH=str(config), SECRET_KEY=SECRET,
                PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", LOG_LEVEL="ERROR", DESK_DEV_TOOLS="0")


def server_app():
    """gunicorn factory (``bench.chat:server_app()``): the desk app with ``BENCH_CHAT_POOL`` connections
    kept in the database pool -- to compare with the desk's default pool under the same load."""
    from app import create_app

    size = int(os.environ["BENCH_CHAT_POOL"])
    return create_app(overrides={"SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": size,
                                                               "max_overflow": size}})


def _start_server(env: dict[str, str], port: int, workers: int, pool: int):
    import socket
    import subprocess

    target = "app.wsgi:app"
    if pool:
        env = dict(env, BENCH_CHAT_POOL=str(pool))
        target = "bench.chat:server_app()"
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers), "--worker-connections", "2000",
               "--bind", f"127.0.0.1:{port}", "--log-level", "warning", target]
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
    _stop(server)
    raise RuntimeError("gunicorn did not start listening within 60 s")


def _driver_app(db_url: str, redis_url: str, config: Path, port: int):
    from app import create_app

    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "SECRET_KEY": SECRET, "LOG_LEVEL": "ERROR",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    return create_app(str(config), env=env, overrides={"ROUTER_THREAD": False, "PERIODIC_THREAD": False,
                                                       "CHAT_TIMERS": False})


def _prepare(app, agents: int) -> list[int]:
    """Empty schema and ``agents`` chat agents."""
    from app.auth.models import AgentSkill, StaffUser
    from app.auth.passwords import hash_password
    from app.extensions import db

    with app.app_context():
        db.drop_all()
        db.create_all()
        password_hash = hash_password("bench-password")
        staff = [StaffUser(email=f"chat{n}@bench.desk", name=f"Agent {n}", password_hash=password_hash, role="agent",
                           skills=[AgentSkill(skill="general", level=8)]) for n in range(agents)]
        db.session.add_all(staff)
        db.session.commit()
        ids = [s.id for s in staff]
        db.session.remove()
        return ids


def _assign(app, interaction_ids: list[int], agent_ids: list[int]) -> None:
    """Give chat i to agent i mod n, through the state machine (what the router and console do)."""
    from app.extensions import db
    from app.interactions.models import Interaction
    from app.interactions.service import transition
    from app.interactions.states import State

    with app.app_context():
        for index, interaction_id in enumerate(interaction_ids):
            interaction = db.session.get(Interaction, interaction_id)
            agent_id = agent_ids[index % len(agent_ids)]
            transition(db.session, interaction, State.OFFERED, actor="bench-router")
            interaction.agent_id = agent_id
            transition(db.session, interaction, State.CONNECTED, actor=f"staff:{agent_id}")
            db.session.commit()
        db.session.remove()


async def _drive(url: str, app, agent_ids: list[int], args: argparse.Namespace, cpu=None) -> dict:
    import socketio

    received: dict[str, float] = {}
    acked: dict[str, float] = {}
    sent: dict[str, float] = {}
    ack_ms: list[float] = []
    sessions: list = []

    async def agent(agent_id: int):
        import aiohttp

        # aiohttp's default cookie jar ignores cookies for IP addresses; the console needs its session cookie
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        sessions.append(http)

        async def on_message(data):
            text = data["message"]["body"]
            if data["message"]["sender"] == "customer" and text.startswith("m:"):
                received.setdefault(text, time.perf_counter())

        sio.on("chat.message", on_message, namespace="/agent")
        cookie = await asyncio.get_running_loop().run_in_executor(None, _cookie, app, agent_id)
        await sio.connect(url, namespaces=["/agent"], transports=["websocket"], wait_timeout=60,
                          headers={"Cookie": cookie, "User-Agent": CONSOLE_AGENT})
        return sio

    async def customer(n: int):
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(url, namespaces=["/customer"], transports=["websocket"], wait_timeout=60)
        reply = await sio.call("start", {"name": f"Customer {n}", "email": f"c{n}@bench.example", "topic": "general",
                                         "language": "en"}, namespace="/customer", timeout=60)
        if not reply.get("ok"):
            raise RuntimeError(f"chat start refused: {reply}")
        return sio, reply["status"]["interaction_id"]

    agents = []
    for start in range(0, len(agent_ids), 20):
        agents += await asyncio.gather(*(agent(a) for a in agent_ids[start:start + 20]))
    customers = []
    for start in range(0, args.customers, 50):
        customers += await asyncio.gather(*(customer(n) for n in range(start, min(start + 50, args.customers))))
    await asyncio.get_running_loop().run_in_executor(None, _assign, app, [c[1] for c in customers], agent_ids)
    await asyncio.sleep(1.0)

    async def talk(n: int, sio) -> None:
        interval = 1.0 / args.rate
        await asyncio.sleep(random.random() * interval)
        deadline = time.perf_counter() + args.seconds
        seq = 0
        while time.perf_counter() < deadline:
            text = f"m:{n}:{seq}"
            sent[text] = time.perf_counter()
            try:
                reply = await sio.call("message", {"client_id": f"b-{n:06d}-{seq:06d}", "text": text},
                                       namespace="/customer", timeout=30)
            except Exception:  # a timed-out ack: counted as not acknowledged, not as lost
                reply = None
            if reply and reply.get("ok"):
                acked[text] = time.perf_counter()
                ack_ms.append((acked[text] - sent[text]) * 1000)
            seq += 1
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - sent[text])))

    # The load generator is the instrument, not the desk: 600 clients in one process make its own full
    # garbage collections (a stall of every client at once, every few seconds) part of every latency.
    # Its collector rests while messages are timed; the desk's processes keep theirs.
    gc.freeze()
    gc.disable()
    before = cpu() if cpu else {}
    try:
        await asyncio.gather(*(talk(n, sio) for n, (sio, _) in enumerate(customers)))
    finally:
        gc.enable()
        gc.unfreeze()
    spent = {name: seconds - before[name] for name, seconds in cpu().items()} if cpu else {}
    # the rate over the time messages were being sent (every customer starts at a random offset)
    elapsed = max(sent.values()) - min(sent.values()) if len(sent) > 1 else 0.0
    drain_until = time.perf_counter() + DRAIN_S
    while time.perf_counter() < drain_until and any(t not in received for t in acked):
        await asyncio.sleep(0.1)
    for sio in [c[0] for c in customers] + agents:
        await sio.disconnect()
    for http in sessions:
        await http.close()
    latencies = sorted((received[t] - sent[t]) * 1000 for t in acked if t in received)
    if os.environ.get("BENCH_TRACE"):  # per message: when it was sent (s into the run), its latency and ack
        began = min(sent.values())
        to_wall = time.time() - time.perf_counter()  # to set beside the desk's own logs (DESK_GC_LOG)
        with open(os.environ["BENCH_TRACE"], "w") as out:
            for text, at in sorted(sent.items(), key=lambda item: item[1]):
                out.write(json.dumps({"m": text, "t": round(at - began, 4), "wall": round(at + to_wall, 4),
                                      "ms": round((received[text] - at) * 1000, 2) if text in received else None,
                                      "ack_ms": round((acked[text] - at) * 1000, 2) if text in acked else None})
                          + "\n")
    return {"messages": len(acked), "elapsed_s": elapsed, "latencies": latencies, "ack_ms": sorted(ack_ms),
            "lost": sum(1 for t in acked if t not in received), "unacked": len(sent) - len(acked), "cpu_s": spent}


def _cpu_meter(server):
    """CPU seconds so far of the web workers and of this process (the clients): per message they say
    where the machine's time went, a figure the load of a shared machine moves far less than latency.
    (The database's backends are not summed: the server's pool opens and closes overflow connections,
    and a backend that exits takes its CPU time out of /proc.)"""
    from bench.voice import _cpu_seconds

    return lambda: {"web": _cpu_seconds([server.pid]), "bench": time.process_time()}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv: list[str]) -> int:
    args = _args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as scratch:
        directory = Path(scratch)
        config = _config(directory)
        db_url = _database(args.database_url, directory)
        port = _free_port()
        app = _driver_app(db_url, args.redis_url, config, port)
        agent_ids = _prepare(app, args.agents)
        server = _start_server(_env(db_url, args.redis_url, config, port), port, args.workers, args.pool)
        try:
            raw = asyncio.run(_drive(f"http://127.0.0.1:{port}", app, agent_ids, args, _cpu_meter(server)))
        finally:
            _stop(server)
    latencies = raw["latencies"]
    result = {"bench": "chat", "customers": args.customers, "agents": args.agents, "workers": args.workers,
              "pool": args.pool or "default",
              "messages": raw["messages"],
              "messages_per_s": round(raw["messages"] / raw["elapsed_s"], 1) if raw["elapsed_s"] else 0.0,
              "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
              "p99_ms": round(_percentile(latencies, 0.99), 2) if latencies else None,
              "ack_p99_ms": round(_percentile(raw["ack_ms"], 0.99), 2) if raw["ack_ms"] else None,
              "lost": raw["lost"], "unacked": raw["unacked"],
              "cpu_ms_per_message": {name: round(seconds * 1000 / raw["messages"], 2)
                                     for name, seconds in raw["cpu_s"].items()} if raw["messages"] else {},
              "database": "postgresql" if db_url.startswith("postgresql") else "sqlite"}
    if args.json:
        print(json.dumps(result))
    print(f"{'customers':>10} {'agents':>7} {'messages':>9} {'msg/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'ack p99':>8} {'lost':>5}", file=sys.stderr if args.json else sys.stdout)
    print(f"{result['customers']:>10} {result['agents']:>7} {result['messages']:>9} {result['messages_per_s']:>7} "
          f"{result['p50_ms']!s:>8} {result['p99_ms']!s:>8} {result['ack_p99_ms']!s:>8} {result['lost']:>5}",
          file=sys.stderr if args.json else sys.stdout)
    return 0
