"""Random sequences of arrivals, abandons, agents joining and leaving, accepts, rejects and timeouts
drive the engine; an independent ledger built only from what the engine reported checks issue 4's
invariants after every step:

1. never two live offers for one contact;
2. no agent beyond capacity;
3. once matched, no eligible agent with room is left free while a contact they could take waits;
4. every offer goes to the best-keyed (priority, then first arrival) contact its agent could take;
5. every contact is in exactly one state; none vanish.
"""
from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from queues import matching
from queues.config import AgentGroup, EscalationStep, Overflow, QueueConfig, RoutingConfig, SkillRequirement
from queues.engine import OfferNotPending, RoutingEngine
from queues.matching import Contact

SKILLS = ("general", "billing", "zh")
CHANNELS = ("voice", "chat", "email")


def make_config() -> RoutingConfig:
    return RoutingConfig(
        agent_groups={"default": AgentGroup(capacity=100, wrap_up_s=5, missed_offers_to_break=2)},
        queues=[
            QueueConfig(name="general", channels=["voice", "chat", "email"],
                        skills=[SkillRequirement(skill="general", min_level=5)],
                        escalation=[EscalationStep(after_s=20, skills=[SkillRequirement(skill="general")]),
                                    EscalationStep(after_s=60, any_agent=True)],
                        overflow=Overflow(after_s=200, action="callback")),
            QueueConfig(name="billing", channels=["voice", "chat", "email"],
                        skills=[SkillRequirement(skill="billing", min_level=3)],
                        escalation=[EscalationStep(after_s=30, also_queues=["general"])],
                        overflow=Overflow(after_s=120, action="voicemail")),
        ],
        offer_lease_s=15, backoff_s={"reject": 5, "no_answer": 10, "disconnect": 20})


class EngineMachine(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.config = make_config()
        self.engine = RoutingEngine(self.config)
        self.naive = matching.NaiveRouter(self.engine.steps, self.engine.w)
        self.now = 1000.0
        self.next_id = 1
        self.state: dict[int, str] = {}  # contact id -> waiting | offered | connected | <terminal>
        self.offer_of: dict[int, tuple[int, int]] = {}  # contact id -> (agent id, cost) while offered
        self.connected_to: dict[int, tuple[int, int]] = {}
        self.cost_of: dict[int, int] = {}

    # ---------------------------------------------------------------- helpers
    def live(self, wanted: str) -> list[int]:
        return sorted(cid for cid, s in self.state.items() if s == wanted)

    def model_load(self, agent_id: int) -> int:
        held = list(self.offer_of.values()) + list(self.connected_to.values())
        return sum(cost for aid, cost in held if aid == agent_id)

    def settle(self):
        before = set(self.live("waiting"))
        result = self.engine.match(self.now)
        for offer in result.expired:
            assert self.offer_of.pop(offer.contact_id)[0] == offer.agent_id
            self.state[offer.contact_id] = "waiting"
            before.add(offer.contact_id)
        for contact, action in result.overflowed:
            assert self.state[contact.id] == "waiting"
            self.state[contact.id] = f"overflow:{action}"
            before.discard(contact.id)
        loads = {aid: self.model_load(aid) for aid in self.engine.agents}
        for offer in result.offers:
            cid, agent = offer.contact_id, self.engine.agents[offer.agent_id]
            assert self.state[cid] == "waiting", "invariant 1: a contact offered twice"
            contact = self.engine.contacts[cid]
            self.check_best_contact(agent, contact, before, loads)
            self.state[cid] = "offered"
            self.offer_of[cid] = (agent.id, offer.cost)
            loads[agent.id] += offer.cost
            before.discard(cid)

    def check_best_contact(self, agent, contact, waiting_ids, loads):
        """Invariant 4: no waiting contact the agent could have taken ranks ahead of the one offered."""
        free = agent.capacity - loads[agent.id]
        key = self.engine.key_of(contact.id)
        for other_id in waiting_ids:
            other = self.engine.contacts[other_id]
            if self.engine.key_of(other_id) >= key or free < agent.cost(other.channel):
                continue
            requirement = matching.contact_requirement(self.engine.steps[other.queue], other)
            if other.preferred_agent_id is not None and self.now < other.preferred_until:
                assert other.preferred_agent_id != agent.id, "preferred contact skipped"
                continue
            assert not matching.meets(agent.skills, requirement), (
                f"invariant 4: contact {contact.id} offered to agent {agent.id} ahead of {other_id}")

    # ---------------------------------------------------------------- rules
    @rule(skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=3))
    def agent_joins(self, skills):
        agent_id = len(self.engine.agents) + 1
        if agent_id > 6:
            return
        self.engine.upsert_agent(agent_id, skills, self.now)
        self.engine.set_presence(agent_id, "available", self.now)
        self.settle()

    @precondition(lambda self: self.engine.agents)
    @rule(data=st.data(), presence=st.sampled_from(["offline", "available", "break"]))
    def agent_presence(self, data, presence):
        agent_id = data.draw(st.sampled_from(sorted(self.engine.agents)))
        self.engine.set_presence(agent_id, presence, self.now, reason="lunch" if presence == "break" else None)
        self.settle()

    @precondition(lambda self: self.engine.agents)
    @rule(data=st.data())
    def agent_disconnects(self, data):
        agent_id = data.draw(st.sampled_from(sorted(self.engine.agents)))
        for offer in self.engine.agent_disconnected(agent_id, self.now):
            self.offer_of.pop(offer.contact_id)
            self.state[offer.contact_id] = "waiting"
        assert self.engine.agents[agent_id].presence == "offline"
        self.settle()

    @rule(queue=st.sampled_from(["general", "billing"]), channel=st.sampled_from(CHANNELS),
          priority=st.sampled_from([0, 0, 100, 300]), earlier_s=st.sampled_from([0, 0, 30, 90]),
          extras=st.sampled_from([(), (), (("zh", 2),)]), preferred=st.sampled_from([None, None, 1, 2]))
    def contact_arrives(self, queue, channel, priority, earlier_s, extras, preferred):
        cid = self.next_id
        self.next_id += 1
        contact = Contact(cid, queue, channel, routing_age_origin=self.now - earlier_s, enqueued_at=self.now,
                          priority=priority, required_skills=extras, preferred_agent_id=preferred,
                          preferred_until=self.now + 10 if preferred else 0.0)
        self.engine.add_contact(contact, self.now)
        self.state[cid] = "waiting"
        self.settle()

    @precondition(lambda self: any(s in ("waiting", "offered", "connected") for s in self.state.values()))
    @rule(data=st.data())
    def contact_abandons(self, data):
        cid = data.draw(st.sampled_from(self.live("waiting") + self.live("offered") + self.live("connected")))
        rescinded = self.engine.remove_contact(cid, self.now)
        assert (rescinded is not None) == (self.state[cid] == "offered")
        self.offer_of.pop(cid, None)
        self.connected_to.pop(cid, None)
        self.state[cid] = "abandoned"
        self.settle()

    @precondition(lambda self: self.offer_of)
    @rule(data=st.data(), twice=st.booleans())
    def agent_accepts(self, data, twice):
        cid = data.draw(st.sampled_from(sorted(self.offer_of)))
        agent_id, cost = self.offer_of[cid]
        wrong = next((a for a in self.engine.agents if a != agent_id), None)
        if wrong is not None:
            try:
                self.engine.accept(cid, wrong, self.now)
                raise AssertionError("another agent accepted someone else's offer")
            except OfferNotPending:
                pass
        self.engine.accept(cid, agent_id, self.now)
        if twice:
            try:
                self.engine.accept(cid, agent_id, self.now)
                raise AssertionError("an offer was accepted twice")
            except OfferNotPending:
                pass
        del self.offer_of[cid]
        self.connected_to[cid] = (agent_id, cost)
        self.state[cid] = "connected"
        self.settle()

    @precondition(lambda self: self.offer_of)
    @rule(data=st.data(), cause=st.sampled_from(["reject", "no_answer", "disconnect"]))
    def agent_rejects(self, data, cause):
        cid = data.draw(st.sampled_from(sorted(self.offer_of)))
        agent_id, _ = self.offer_of.pop(cid)
        key_before = self.engine.key_of(cid)
        self.engine.reject(cid, agent_id, self.now, cause=cause)
        assert self.engine.key_of(cid) == key_before, "a re-queued contact lost its place"
        self.state[cid] = "waiting"
        self.settle()

    @precondition(lambda self: self.connected_to)
    @rule(data=st.data(), wrap_up=st.booleans())
    def agent_finishes(self, data, wrap_up):
        cid = data.draw(st.sampled_from(sorted(self.connected_to)))
        self.engine.release(cid, self.now, wrap_up=wrap_up)
        del self.connected_to[cid]
        self.state[cid] = "released"
        self.settle()

    @rule(seconds=st.sampled_from([1, 3, 6, 11, 16, 25, 70]))
    def time_passes(self, seconds):
        self.now += seconds
        self.settle()

    # ---------------------------------------------------------------- invariants
    @invariant()
    def one_live_offer_per_contact_and_ledger_agrees(self):
        assert set(self.engine.offers) == set(self.offer_of)
        for cid, offer in self.engine.offers.items():
            assert offer.agent_id == self.offer_of[cid][0]
            assert offer.expires_at > self.now, "a lease ran out and nobody reconciled it"

    @invariant()
    def no_agent_beyond_capacity(self):
        for agent in self.engine.agents.values():
            load = self.model_load(agent.id)
            assert agent.load == load
            assert load <= agent.capacity

    @invariant()
    def settled_no_eligible_agent_left_free(self):
        for cid in self.live("waiting"):
            contact = self.engine.contacts[cid]
            requirement = matching.contact_requirement(
                self.engine.steps[contact.queue],
                Contact(cid, contact.queue, contact.channel, contact.routing_age_origin, contact.enqueued_at,
                        required_skills=contact.required_skills,
                        step=matching.step_for(self.engine.steps[contact.queue], contact.enqueued_at, self.now)))
            for agent in self.engine.agents.values():
                reason = matching.exclusion_reason(agent, contact, requirement, self.now)
                assert reason is not None, f"invariant 3: agent {agent.id} free for waiting contact {cid}"

    @invariant()
    def every_contact_in_exactly_one_state(self):
        live = {cid for cid, s in self.state.items() if s in ("waiting", "offered", "connected")}
        assert set(self.engine.contacts) == live
        for cid in live:
            assert self.engine.contacts[cid].state == self.state[cid]
        assert len(self.state) == self.next_id - 1  # every contact ever added is accounted for


TestEngineInvariants = EngineMachine.TestCase
TestEngineInvariants.settings = settings(max_examples=200, stateful_step_count=40, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
