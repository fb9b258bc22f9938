"""Issue 4's invariants at the DATABASE level: Hypothesis drives random sequences of arrivals,
abandons, agents joining, leaving (offline, break, console lost) and coming back, accepts (and second
clicks), rejects, leases running out (and late accepts), finished contacts and router restarts through
``queues.service`` and ``queues.router.run_once``. After every step the router settles and a model
kept by the test checks, against the rows:

1. never two live offers for one contact (and an offered contact has exactly its one pending offer);
2. no agent beyond capacity;
3. no eligible agent (available, not backed off, base skills of the queue, room for the channel) is
   left free while a contact they could take waits;
4. at equal priority, FIFO by first arrival, re-queued contacts included: no offer made in a step goes
   past an older contact of the same queue and channel that still waits;
5. every contact is in exactly one state, the one the model expects; none vanish.

Each example starts from empty tables, an empty Redis and a fresh router, so it runs the same on
SQLite and on PostgreSQL (CI).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, \
    run_state_machine_as_test
from sqlalchemy import event as event_api
from sqlalchemy import select, text

from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import transition
from queues import router, service
from queues.models import AgentState, Offer
from tests.factories import make_interaction, make_staff

EXAMPLES = 200
STEPS = 8  # rules per example after the opening desk; small, so 200 examples stay near a minute
# What arrives: mostly general chats and calls, so contacts of one queue and channel often wait together.
PAIRS = [("general", "chat")] * 3 + [("general", "voice")] * 2 + [("billing", "chat"), ("billing", "voice"),
                                                                 ("general", "email"), ("general", "task")]
SKILL_SETS = ({"general": 5}, {"general": 2}, {"billing": 4}, {"general": 3, "billing": 3}, {"billing": 1})
MAX_CONTACTS, MAX_AGENTS = 10, 4


def empty_tables(app) -> None:
    from app.extensions import db

    db.session.remove()
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:  # DELETE, not TRUNCATE: cheap on the few small tables an example fills
        for table in tables:
            conn.execute(text(f'DELETE FROM "{table}"'))
    app.extensions["desk.redis"].flushdb()
    router.reset(app)


@dataclass(frozen=True)
class Row:
    state: str
    agent_id: int | None
    queue: str
    channel: str
    origin: datetime | None


class RouterMachine(RuleBasedStateMachine):
    app = None  # set by the test

    @initialize(agents=st.lists(st.sampled_from(SKILL_SETS), min_size=1, max_size=3),
                contacts=st.lists(st.tuples(st.sampled_from(PAIRS), st.integers(0, 3)), min_size=2, max_size=6))
    def start(self, agents, contacts):
        """A small desk in one go: agents at work and contacts arriving before the router first runs."""
        from app.extensions import db

        empty_tables(self.app)
        self.session = db.session
        self.config = self.app.extensions["desk.config"].routing
        self.now = utcnow().replace(microsecond=0)
        self.contacts: dict[int, str] = {}  # id -> fate: live | accepted | abandoned | finished
        self.agents: dict[int, dict[str, int]] = {}  # id -> skills
        self.snapshot: dict[int, Row] = {}
        self.offers: dict[int, tuple[int, int]] = {}  # pending offer id -> (interaction id, agent id)
        self.new_offers: list[int] = []
        for skills in agents:
            self._join(skills)
        for (queue, channel), after_s in contacts:
            self._arrive(queue, channel, after_s)
        self.session.commit()
        self.settle()

    # ---------------------------------------------------------------- helpers
    def _join(self, skills: dict[str, int]) -> None:
        staff = make_staff(self.session, skills=skills)
        service.set_presence(self.session, staff.id, "available", now=self.now)
        self.agents[staff.id] = dict(skills)

    def _arrive(self, queue: str, channel: str, after_s: int) -> None:
        self.now += timedelta(seconds=after_s)
        interaction = make_interaction(self.session, channel=channel)
        service.enqueue_contact(self.session, interaction, queue, actor="test", now=self.now)
        self.contacts[interaction.id] = "live"

    def settle(self) -> None:
        """Let the router settle, then read back where everything is (the invariants check this)."""
        before = set(self.offers)
        router.run_once(self.app, self.now)
        self.session.expire_all()
        self.snapshot = {ident: Row(state, agent_id, queue, channel, origin) for ident, state, agent_id, queue,
                         channel, origin in self.session.execute(select(
                             Interaction.id, Interaction.state, Interaction.agent_id, Interaction.queue,
                             Interaction.channel, Interaction.routing_age_origin))}
        self.offers = {oid: (iid, aid) for oid, iid, aid in self.session.execute(
            select(Offer.id, Offer.interaction_id, Offer.agent_id).where(Offer.status == "pending"))}
        self.presence = {aid: (presence, backoff) for aid, presence, backoff in self.session.execute(
            select(AgentState.agent_id, AgentState.presence, AgentState.backoff_until))}
        self.new_offers = sorted(set(self.offers) - before)

    def in_state(self, *states: str) -> list[int]:
        return sorted(ident for ident, row in self.snapshot.items() if row.state in states)

    def eligible(self, agent_id: int, queue: str) -> bool:
        skills = self.agents[agent_id]
        return all(skills.get(req.skill, 0) >= req.min_level for req in self.config.queue(queue).skills)

    def load(self, agent_id: int) -> int:
        costs = self.config.agent_group("default").costs
        return sum(costs[row.channel] for row in self.snapshot.values()
                   if row.agent_id == agent_id and row.state in ("offered", "connected"))

    # ---------------------------------------------------------------- rules
    @precondition(lambda self: len(self.contacts) < MAX_CONTACTS)
    @rule(pair=st.sampled_from(PAIRS), after_s=st.integers(0, 3))
    def arrive(self, pair, after_s):
        self._arrive(*pair, after_s)
        self.session.commit()
        self.settle()

    @precondition(lambda self: len(self.agents) < MAX_AGENTS)
    @rule(skills=st.sampled_from(SKILL_SETS))
    def agent_joins(self, skills):
        self._join(skills)
        self.session.commit()
        self.settle()

    @rule(data=st.data(), how=st.sampled_from(["offline", "break", "disconnect"]))
    def agent_leaves(self, data, how):
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        if how == "disconnect":
            service.agent_disconnected(self.session, agent_id, now=self.now)
        else:
            service.set_presence(self.session, agent_id, how, "lunch" if how == "break" else None, now=self.now)
        self.session.commit()
        self.settle()

    @rule(data=st.data())
    def agent_returns(self, data):
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        service.set_presence(self.session, agent_id, "available", now=self.now)
        self.session.commit()
        self.settle()

    @precondition(lambda self: self.offers)
    @rule(data=st.data(), twice=st.booleans())
    def accept(self, data, twice):
        offer_id = data.draw(st.sampled_from(sorted(self.offers)))
        interaction_id, agent_id = self.offers[offer_id]
        service.accept_offer(self.session, offer_id, agent_id, now=self.now)
        self.session.commit()
        self.contacts[interaction_id] = "accepted"
        if twice:  # a double click or a second tab never connects twice
            try:
                service.accept_offer(self.session, offer_id, agent_id, now=self.now)
            except service.OfferNotAvailable:
                self.session.rollback()
            else:
                raise AssertionError("an offer was accepted twice")
        self.settle()

    @precondition(lambda self: self.offers)
    @rule(data=st.data(), cause=st.sampled_from(service.BACKOFF_CAUSES), after_s=st.integers(0, 3))
    def reject(self, data, cause, after_s):
        offer_id = data.draw(st.sampled_from(sorted(self.offers)))
        self.now += timedelta(seconds=after_s)
        service.reject_offer(self.session, offer_id, self.offers[offer_id][1], cause, now=self.now)
        self.session.commit()
        self.settle()

    @precondition(lambda self: self.offers)
    @rule(data=st.data())
    def lease_runs_out(self, data):
        offer_id = data.draw(st.sampled_from(sorted(self.offers)))
        self.now += timedelta(seconds=self.config.offer_lease_s + 1)
        try:  # a late accept loses
            service.accept_offer(self.session, offer_id, self.offers[offer_id][1], now=self.now)
        except service.OfferNotAvailable:
            self.session.rollback()
        else:
            raise AssertionError("an offer was accepted after its lease ran out")
        self.settle()

    @rule(seconds=st.sampled_from([1, 6, 31]))  # past the reject back-off, the no-answer one, wrap-up
    def time_passes(self, seconds):
        self.now += timedelta(seconds=seconds)
        self.settle()

    @precondition(lambda self: self.in_state("queued", "offered"))
    @rule(data=st.data())
    def customer_leaves(self, data):
        interaction = self.session.get(Interaction, data.draw(st.sampled_from(self.in_state("queued", "offered"))))
        service.rescind_offers_for_abandoned(self.session, interaction, now=self.now)
        transition(self.session, interaction, "abandoned", actor="test", at=self.now)
        self.session.commit()
        self.contacts[interaction.id] = "abandoned"
        self.settle()

    @precondition(lambda self: self.in_state("connected"))
    @rule(data=st.data())
    def agent_finishes(self, data):
        interaction = self.session.get(Interaction, data.draw(st.sampled_from(self.in_state("connected"))))
        transition(self.session, interaction, "wrap_up", actor="test", at=self.now)
        service.release_agent(self.session, interaction, now=self.now)
        self.session.commit()
        self.contacts[interaction.id] = "finished"
        self.settle()

    @rule()
    def router_restarts(self):
        router.reset(self.app)  # killed; the next one rebuilds from the database
        self.settle()

    # ---------------------------------------------------------------- invariants (after every step)
    @invariant()
    def one_live_offer_per_contact(self):
        contacts = [iid for iid, _ in self.offers.values()]
        assert len(contacts) == len(set(contacts)), "two live offers for one contact"
        offered = {ident: row.agent_id for ident, row in self.snapshot.items() if row.state == "offered"}
        assert dict(self.offers.values()) == offered, "an offered contact without its one pending offer"

    @invariant()
    def nobody_beyond_capacity(self):
        capacity = self.config.agent_group("default").capacity
        for agent_id in self.agents:
            assert self.load(agent_id) <= capacity, f"agent {agent_id} beyond capacity"

    @invariant()
    def no_eligible_agent_idles_while_a_contact_waits(self):
        group = self.config.agent_group("default")
        waiting = [(ident, row) for ident, row in self.snapshot.items() if row.state == "queued"]
        for agent_id in self.agents:
            presence, backoff_until = self.presence[agent_id]
            if presence != "available" or (backoff_until is not None and backoff_until > self.now):
                continue
            room = group.capacity - self.load(agent_id)
            for ident, row in waiting:
                could = group.costs[row.channel] <= room and self.eligible(agent_id, row.queue)
                assert not could, f"agent {agent_id} left free while {ident} ({row.queue}/{row.channel}) waits"

    @invariant()
    def fifo_at_equal_priority(self):
        for offer_id in self.new_offers:
            ident = self.offers[offer_id][0]
            taken = self.snapshot[ident]
            for other_id, other in self.snapshot.items():
                if other.state == "queued" and (other.queue, other.channel) == (taken.queue, taken.channel):
                    event("an offer made while a contact of its queue and channel waits")
                    assert (other.origin, other_id) > (taken.origin, ident), \
                        f"{ident} offered past the older {other_id}"

    @invariant()
    def every_contact_where_the_model_says(self):
        assert sorted(self.snapshot) == sorted(self.contacts), "a contact vanished or appeared"
        expected = {"live": {"queued", "offered"}, "accepted": {"connected"}, "abandoned": {"abandoned"},
                    "finished": {"wrap_up"}}
        for ident, fate in self.contacts.items():
            assert self.snapshot[ident].state in expected[fate], (ident, self.snapshot[ident], fate)


def test_routing_invariants_hold_against_the_database(app):
    from ivr import agent_leg
    from app import realtime

    from app.extensions import db

    desk_config = app.extensions["desk.config"]
    # No back-off after a plain reject, so the agent who declined is at once a candidate for the next
    # contact: a re-queued contact that lost its place would be passed over in the same step.
    app.extensions["desk.config"] = desk_config.model_copy(update={"routing": desk_config.routing.model_copy(
        update={"backoff_s": {**desk_config.routing.backoff_s, "reject": 0}})})
    RouterMachine.app = app
    realtime.unsubscribe(agent_leg.on_realtime_event)  # no call bridging: these calls have no phone leg
    # Thousands of tiny commits: do not wait for the disk on the throw-away test database.
    db.session.remove()
    db.engine.dispose()
    event_api.listen(db.engine, "connect", _no_fsync)
    try:
        run_state_machine_as_test(RouterMachine, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    finally:
        realtime.subscribe(agent_leg.on_realtime_event)
        app.extensions["desk.config"] = desk_config
        router.reset(app)
        RouterMachine.app = None
        empty_tables(app)
        event_api.remove(db.engine, "connect", _no_fsync)
        db.session.remove()
        db.engine.dispose()  # later tests get connections with the default settings


def _no_fsync(dbapi_connection, _record) -> None:
    sqlite = type(dbapi_connection).__module__.startswith("sqlite3")
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF" if sqlite else "SET synchronous_commit TO OFF")
    cursor.close()
    dbapi_connection.commit()
