"""The ``/agent`` Socket.IO namespace and the realtime fan-out to it.

Browser -> server: every event is a command answered through its acknowledgement with ``{"ok": true, ...}``
or ``{"ok": false, "error": code, "problems": [...]}``; each checks the user's role
(``socket_role_required``), validates its payload (``agent_console.events``), calls one service function,
commits, and lets ``app.realtime`` announce what changed after the commit.

Server -> browser: one room per agent (``agent:<id>``) holds every tab the agent has open, so two tabs
stay consistent. The realtime listener turns routing and interaction events into typed events for that
room: ``offer`` (with the screen-pop), ``offer_gone``, ``presence``, ``work``, ``work_closed``, ``alert``
(a complaint's SLA alert).
On connect the socket gets a ``snapshot`` of the whole console, which is also how a reconnect restores
state. When an agent's last socket goes quiet (disconnect, or heartbeats stop) for ``CONSOLE_DISCONNECT_GRACE_S``
seconds, routing is told the agent disconnected (their pending offers go back to the queue).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, request
from flask_socketio import Namespace, join_room
from sqlalchemy import select

from agent_console import (
    payloads, presence_registry, reply_templates, routing, service as console, workspace,
)
from agent_console.events import (
    BadPayload, InChatRead, InChatSend, InChatTyping, InEmailCancel, InEmailPreview, InEmailSend, InFollowUp,
    InInteraction, InLinkCustomer, InNote, InOffer, InPresence, InReplyTemplate, InSearch, InTransfer, InWrapUp,
    OutEmailMessage, OutOfferGone, OutWorkClosed, parse,
)
from app import realtime
from app.auth.models import Role
from app.auth.roles import current_staff, socket_role_required
from app.channels.email.live import EVENT as EMAIL_EVENT
from app.extensions import db, socketio
from app.interactions.models import InteractionEvent
from queues import router, service as routing_service

log = logging.getLogger(__name__)
NAMESPACE = "/agent"
DEFAULT_GRACE_S = 8.0
_OFFER_GONE = {"offer.rescinded": "rescinded", "offer.expired": "expired", "offer.rejected": "rejected"}
_OPEN = ("connected", "wrap_up")


def agent_room(agent_id: int) -> str:
    return f"agent:{agent_id}"


def _fail(code: str, problems: list[str] | None = None) -> dict[str, Any]:
    return {"ok": False, "error": code, "problems": problems or []}


def command(model: type | None = None) -> Callable:
    """Wrap a handler: role check, payload validation, commit on success, rollback and a typed error
    acknowledgement on a refused action. The handler gets (agent, parsed payload)."""

    def decorator(handler: Callable) -> Callable:
        @wraps(handler)
        @socket_role_required(Role.AGENT)
        def wrapped(self, data=None):
            agent = current_staff()
            try:
                parsed = parse(model, data) if model is not None else None
                result = handler(self, agent, parsed)
                db.session.commit()
            except BadPayload as exc:
                db.session.rollback()
                return _fail("bad_payload", exc.problems)
            except console.ConsoleError as exc:
                db.session.rollback()
                log.info("console action %s refused for agent %s: %s", handler.__name__, agent.id, exc)
                return {**_fail(exc.code), **exc.details()}
            except routing.RoutingError as exc:
                db.session.rollback()
                log.info("routing refused %s for agent %s: %s", handler.__name__, agent.id, exc)
                return _fail(routing.error_code(exc))
            except Exception:
                db.session.rollback()
                log.exception("console action %s failed for agent %s", handler.__name__, agent.id)
                return _fail("internal_error")
            return {"ok": True, **(result or {})}

        return wrapped

    return decorator


class AgentNamespace(Namespace):
    """Handlers are named ``on_<event>``; see the module docstring for the protocol."""

    def on_connect(self, auth=None):
        agent = current_staff()
        if agent is None or not agent.active or not agent.has_role(Role.AGENT):
            raise ConnectionRefusedError("unauthorized")
        join_room(agent_room(agent.id))
        presence_registry.touch(current_app.extensions["desk.redis"], agent.id, request.sid)
        config = current_app.extensions["desk.config"]
        self.emit("snapshot", payloads.snapshot(db.session, agent, config).model_dump(mode="json"), room=request.sid)

    def on_disconnect(self, reason=None):
        agent = current_staff()
        if agent is None:
            return
        redis = current_app.extensions["desk.redis"]
        presence_registry.drop(redis, agent.id, request.sid)
        if presence_registry.live_sockets(redis, agent.id):
            return  # another tab is still open
        grace_s = float(current_app.config.get("CONSOLE_DISCONNECT_GRACE_S", DEFAULT_GRACE_S))
        app = current_app._get_current_object()
        if grace_s <= 0:
            _disconnect_if_gone(app, agent.id, 0)
        else:
            socketio.start_background_task(_disconnect_if_gone, app, agent.id, grace_s)

    @socket_role_required(Role.AGENT)
    def on_heartbeat(self, data=None):
        agent = current_staff()
        presence_registry.touch(current_app.extensions["desk.redis"], agent.id, request.sid)
        return {"ok": True, "server_time": time.time()}

    @command()
    def on_sync(self, agent, _):
        return {"snapshot": payloads.snapshot(db.session, agent, current_app.extensions["desk.config"])
                .model_dump(mode="json")}

    @command(InPresence)
    def on_presence(self, agent, data: InPresence):
        routing_service.set_presence(db.session, agent.id, data.presence,
                                     data.reason if data.presence == "break" else None)

    @command(InOffer)
    def on_accept(self, agent, data: InOffer):
        routing_service.accept_offer(db.session, data.offer_id, agent.id)

    @command(InOffer)
    def on_reject(self, agent, data: InOffer):
        routing_service.reject_offer(db.session, data.offer_id, agent.id, cause="reject")

    @command(InInteraction)
    def on_end(self, agent, data: InInteraction):
        _end(agent.id, data.interaction_id)

    @command(InWrapUp)
    def on_wrap_up(self, agent, data: InWrapUp):
        interaction = console.own_work(db.session, agent.id, data.interaction_id)
        if interaction.state == "connected":  # closed as the conversation ends: no wrap-up to time
            _end(agent.id, interaction.id, disposition=data.disposition, notes=data.notes)
        else:
            console.complete_wrap_up(db.session, agent.id, data.interaction_id, data.disposition, data.notes,
                                     current_app.extensions["desk.config"])
        routing.finish_wrap_up(db.session, agent.id)

    @command(InNote)
    def on_note(self, agent, data: InNote):
        console.save_note(db.session, agent.id, data.interaction_id, data.text)

    @command(InTransfer)
    def on_transfer(self, agent, data: InTransfer):
        interaction = console.own_work(db.session, agent.id, data.interaction_id, states=("connected",))
        if interaction.channel == "chat" and data.queue is not None:  # the customer is told
            workspace.transfer_chat(db.session, agent.id, interaction.id, data.queue, data.note)
            return
        routing.transfer(db.session, interaction, queue=data.queue, agent_id=data.agent_id, note=data.note,
                         actor=console.actor_for(agent.id))

    @command(InFollowUp)
    def on_follow_up(self, agent, data: InFollowUp):
        task = console.create_follow_up(db.session, agent.id, data.interaction_id, data.due_at, data.note)
        db.session.flush()
        return {"task_id": task.id}

    @command(InLinkCustomer)
    def on_link_customer(self, agent, data: InLinkCustomer):
        console.link_customer(db.session, agent.id, data.interaction_id, data.customer_id)

    @command(InSearch)
    def on_search(self, agent, data: InSearch):
        return {"customers": console.search_customers(db.session, data.q)}


    # ---------------------------------------------------------------- chat panel
    @command(InInteraction)
    def on_chat_history(self, agent, data: InInteraction):
        return {"chat": workspace.chat_view(db.session, agent.id, data.interaction_id)}

    @command(InChatSend)
    def on_chat_send(self, agent, data: InChatSend):
        chat_config = current_app.extensions["desk.config"].chat
        return {"message": workspace.send_chat(db.session, chat_config, agent.id, data.interaction_id,
                                               client_id=data.client_id, text=data.text,
                                               seen_upto=data.seen_upto)}

    @command(InChatTyping)
    def on_chat_typing(self, agent, data: InChatTyping):
        workspace.chat_typing(db.session, agent.id, data.interaction_id, data.on)

    @command(InChatRead)
    def on_chat_read(self, agent, data: InChatRead):
        return {"upto": workspace.chat_read(db.session, agent.id, data.interaction_id, data.upto)}

    # ---------------------------------------------------------------- email composer
    @command(InInteraction)
    def on_email_thread(self, agent, data: InInteraction):
        config = current_app.extensions["desk.config"]
        return {"email": workspace.email_view(db.session, config, agent.id, data.interaction_id)}

    @command(InEmailPreview)
    def on_email_preview(self, agent, data: InEmailPreview):
        config = current_app.extensions["desk.config"]
        return {"preview": workspace.email_preview(db.session, config, agent, data.interaction_id, data.body)}

    @command(InEmailSend)
    def on_email_send(self, agent, data: InEmailSend):
        config = current_app.extensions["desk.config"]
        return workspace.send_email(db.session, config, agent, data.interaction_id, body=data.body, cc=data.cc,
                                    seen_upto=data.seen_upto, confirm=data.confirm,
                                    secret=current_app.config["SECRET_KEY"])

    @command(InReplyTemplate)
    def on_reply_template(self, agent, data: InReplyTemplate):
        config = current_app.extensions["desk.config"]
        return {"template": reply_templates.render_for_contact(db.session, config, agent, data.interaction_id,
                                                               data.key)}

    @command(InEmailCancel)
    def on_email_cancel(self, agent, data: InEmailCancel):
        workspace.cancel_email(db.session, agent.id, data.interaction_id, data.message_id)


def _end(agent_id: int, interaction_id: int, *, disposition: str | None = None, notes: str = "") -> None:
    """Conversation over: the interaction goes to wrap-up and routing frees the agent's capacity and
    starts their wrap-up timer. Only on the move itself: a contact the channel already put in wrap-up
    (the caller hung up) was released by the channel, and releasing again would restart the timer.
    With ``disposition`` the wrap-up is completed in the same transaction (closed), and routing is told
    the agent has nothing left to wrap up rather than started on a timer it would stop at once."""
    interaction = console.own_work(db.session, agent_id, interaction_id)
    was = interaction.state
    if interaction.channel == "chat" and was == "connected":
        workspace.end_chat(db.session, agent_id, interaction_id)  # the customer is told; commits
    if disposition is None:
        interaction = console.start_wrap_up(db.session, agent_id, interaction_id)
    else:
        interaction = console.complete_wrap_up(db.session, agent_id, interaction_id, disposition, notes,
                                               current_app.extensions["desk.config"])
    if was == "connected":
        routing_service.release_agent(db.session, interaction, wrapped_up=disposition is not None)


def _disconnect_if_gone(app, agent_id: int, grace_s: float) -> None:
    """After ``grace_s`` seconds, tell routing the agent is gone unless a console came back meanwhile."""
    if grace_s:
        socketio.sleep(grace_s)
    with app.app_context():
        if presence_registry.live_sockets(app.extensions["desk.redis"], agent_id):
            return
        try:
            routing_service.agent_disconnected(db.session, agent_id)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("could not tell routing that agent %s disconnected", agent_id)
        finally:
            db.session.remove()


# ------------------------------------------------------------------ realtime fan-out
_app_ref: dict[str, Any] = {}


_FAN_OUT_NAMES = {*_OFFER_GONE, "offer.accepted", "offer.created", "agent.presence", "console.work",
                  "interaction.state", payloads.ALERT_EVENT}
DISPATCH_SHARDS = 4
PREPARED_LIMIT = 1000


class _Dispatcher:
    """Runs the fan-out off the thread that committed (a web request, the router's loop), so building a
    screen-pop never holds up routing, in ``DISPATCH_SHARDS`` background tasks of the Socket.IO server's
    async mode. All events for one agent go through one shard, so they reach the browser in commit
    order (an offer is never overtaken by its own ``offer_gone``)."""

    def __init__(self, shards: int):
        self.shards = shards
        self._queues: list | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, key: int, job: Callable[[], None]) -> None:
        if self._queues is None:
            with self._lock:
                if self._queues is None:
                    queues = [socketio.server.eio.create_queue() for _ in range(self.shards)]
                    for shard in queues:
                        socketio.start_background_task(self._run, shard)
                    self._queues = queues
        with self._idle:
            self._pending += 1
        self._queues[key % self.shards].put(job)

    def _run(self, shard) -> None:
        while True:
            job = shard.get()
            try:
                job()
            except Exception:  # one bad event must not stop this agent's later ones
                log.exception("console fan-out failed")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until every submitted event has been delivered (shutdown, tests); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)


_dispatcher = _Dispatcher(DISPATCH_SHARDS)


class _Prepared:
    """Screen-pops built while their offer was being written, by (interaction, agent), until the offer's
    event takes them. An offer the database refused leaves its pop behind: the oldest go past ``limit``."""

    def __init__(self, limit: int):
        self.limit = limit
        self._items: OrderedDict[tuple[int, int], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: tuple[int, int], item: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def take(self, key: tuple[int, int]) -> dict[str, Any] | None:
        with self._lock:
            return self._items.pop(key, None)


_prepared = _Prepared(PREPARED_LIMIT)


def prepare_offer(interaction_id: int, agent_id: int, priority: int, priority_reasons: list) -> None:
    """Router hook (``queues.router.on_offer_decided``): build the offer's screen-pop now, on the agent's
    fan-out shard, while the router writes the offer -- the ``offer.created`` delivery queued behind it
    on the same shard then only emits."""
    app = _app_ref.get("app")
    if app is None:
        return

    def build() -> None:
        with app.app_context():
            try:
                item = payloads.prepared_screenpop(db.session, interaction_id, app.extensions["desk.config"],
                                                   priority, priority_reasons)
            finally:
                db.session.remove()
        if item is not None:
            _prepared.put((interaction_id, agent_id), item)

    _dispatcher.submit(agent_id, build)


def fan_out(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Realtime batch listener: queue the ``/agent`` events one commit makes, each for the agent it
    concerns. A contact the same commit moves into an open state and out again (wrap-up completed
    straight from the call) gets no work item to build: its ``work_closed`` follows."""
    for index, (name, payload) in enumerate(events):
        if name == "interaction.state" and payload.get("to") in _OPEN and _left_later(events, index):
            continue
        _fan_out_one(name, payload)


def _left_later(events: list[tuple[str, dict[str, Any]]], index: int) -> bool:
    interaction_id = events[index][1].get("id")
    return any(name == "interaction.state" and payload.get("id") == interaction_id
               and payload.get("to") not in _OPEN for name, payload in events[index + 1:])


def _fan_out_one(name: str, payload: dict[str, Any]) -> None:
    app = _app_ref.get("app")
    if app is None or name not in _FAN_OUT_NAMES:
        return
    agent_id = payload.get("agent_id")
    if agent_id is None and not (name == "interaction.state" and payload.get("from") == "connected"):
        return
    key = int(agent_id) if agent_id is not None else int(payload["id"])
    _dispatcher.submit(key, lambda: deliver(app, name, payload))


def deliver(app, name: str, payload: dict[str, Any]) -> None:
    """Turn one committed change into ``/agent`` events in the room of the agent it concerns."""
    agent_id = payload.get("agent_id")
    if agent_id is None and name == "interaction.state" and payload.get("from") == "connected":
        agent_id = _agent_it_left(app, int(payload["id"]))  # transferred: routing cleared the agent first
    if agent_id is None:
        return
    room = agent_room(int(agent_id))
    if name in _OFFER_GONE or name == "offer.accepted":
        reason = _OFFER_GONE.get(name, "accepted")
        gone = OutOfferGone(offer_id=int(payload["offer_id"]), interaction_id=int(payload["interaction_id"]),
                            reason=reason)
        socketio.emit("offer_gone", gone.model_dump(mode="json"), namespace=NAMESPACE, to=room)
        return
    if name == payloads.ALERT_EVENT:
        _with_session(app, lambda config: payloads.complaint_alert(payload), "alert", room)
    elif name == "offer.created":
        prepared = _prepared.take((int(payload["interaction_id"]), int(agent_id)))
        if prepared is not None:  # built while the offer was written (same shard: it ran before this)
            out = payloads.offer_from_prepared(payload, prepared)
            socketio.emit("offer", out.model_dump(mode="json"), namespace=NAMESPACE, to=room)
        else:
            _with_session(app, lambda config: _offer_seen_by_agent(payload, config), "offer", room)
    elif name == "agent.presence":
        event = payloads.presence_event(int(agent_id), payload)
        socketio.emit("presence", event.model_dump(mode="json"), namespace=NAMESPACE, to=room)
    elif name == "console.work" or (name == "interaction.state" and payload.get("to") in _OPEN):
        interaction_id = int(payload.get("interaction_id") or payload["id"])
        pop = not _pop_on_screen(name, payload)
        moved = payload if name == "interaction.state" else {}
        _with_session(app, lambda config: payloads.moved_work_item(db.session, interaction_id, int(agent_id), moved,
                                                                   config, with_screenpop=pop), "work", room)
    elif name == "interaction.state" and payload.get("from") in _OPEN:
        closed = OutWorkClosed(interaction_id=int(payload["id"]),
                               reason="closed" if payload.get("to") == "closed" else "transferred")
        socketio.emit("work_closed", closed.model_dump(mode="json"), namespace=NAMESPACE, to=room)


def _agent_it_left(app, interaction_id: int) -> int | None:
    """The agent a contact was just taken from (its last transition's ``from_agent_id``), if any."""
    with app.app_context():
        try:
            data = db.session.scalar(select(InteractionEvent.data).where(
                InteractionEvent.interaction_id == interaction_id, InteractionEvent.kind == "transition")
                .order_by(InteractionEvent.id.desc()).limit(1))
        finally:
            db.session.remove()
    value = (data or {}).get("from_agent_id")
    return value if isinstance(value, int) else None


def _pop_on_screen(name: str, payload: dict[str, Any]) -> bool:
    """Whether every console of the agent already shows this contact's screen-pop, so the work item can
    come without one (a 360 is the costliest part of the event): an accepted offer carried it to the
    agent's room, and wrap-up follows a conversation whose tab shows it. A console opened since got it
    in its snapshot."""
    if name != "interaction.state":
        return False  # console.work: the contact changed (a customer linked): a fresh pop
    return (payload.get("to") == "connected" and payload.get("reason") == "offer accepted") \
        or (payload.get("to") == "wrap_up" and payload.get("from") == "connected")


def _offer_seen_by_agent(payload: dict, config) -> payloads.OutOffer | None:
    """A live offer with its screen-pop. Showing the agent the customer's record was audited with the
    offer itself (``queues.service.create_offer``); building the event only reads."""
    return payloads.offer_event(db.session, payload, config)


def _with_session(app, build: Callable, event: str, room: str) -> None:
    """Build an event in a fresh app context (so a fresh session: the committing one cannot query
    inside its after-commit hook) and emit it to ``room``."""
    with app.app_context():
        try:
            out = build(app.extensions["desk.config"])
        finally:
            db.session.remove()
    if out is not None:
        socketio.emit(event, out.model_dump(mode="json"), namespace=NAMESPACE, to=room)


def email_fan_out(name: str, payload: dict[str, Any]) -> None:
    """Realtime listener: a customer's email on a case an agent holds goes to that agent's room as it
    was committed (the payload carries the message; nothing to read back)."""
    if name != EMAIL_EVENT or payload.get("agent_id") is None:
        return
    event = OutEmailMessage.model_validate(payload)
    socketio.emit(EMAIL_EVENT, event.model_dump(mode="json"), namespace=NAMESPACE, to=agent_room(event.agent_id))


def init_app(app) -> None:
    """INITIALISER: register the namespace on this app's Socket.IO server and the realtime listeners."""
    _app_ref["app"] = app
    socketio.on_namespace(AgentNamespace(NAMESPACE))
    realtime.subscribe_batch(fan_out)
    router.on_offer_decided(prepare_offer)
    realtime.subscribe(email_fan_out)
