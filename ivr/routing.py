"""The IVR's door into routing: queue a call, keep its place as a callback, leave, learn its position.

``queues.service`` is the one home of every routing change (queue entries, priorities, offers); this
module only translates what the phone menu decided into its calls:

- the menu node's extra skills join ``interaction.required_skills`` (``{skill, min_level}``, the
  stricter level wins) and its priority bump goes to ``interaction.attributes['priority_bump']``, which
  ``queues.service.refresh_priority`` adds to the tier / complaint / callback points;
- a callback keeps the caller's place: ``queued -> callback_pending`` leaves ``routing_age_origin`` as it
  is, and the priority is recomputed at once (callbacks carry their own weight);
- hanging up while offered rescinds the offer in the same transaction as the move to ``abandoned``.

Nothing here commits: the webhook stores its answer and commits once.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.interactions.models import Interaction
from app.interactions.service import transition, transition_now
from app.interactions.states import State
from queues import service


def enqueue_call(session: Session, interaction: Interaction, queue: str, *, skills: list[tuple[str, int]],
                 priority_bump: int, actor: str, now: datetime | None = None) -> None:
    """Queue the call in ``queue`` (``queues.service.enqueue_contact``: the ``queued`` transition with
    ``data={"queue": ...}``, priority computed, the router woken after commit). Raises
    ``queues.service.UnknownQueue`` / ``NotRoutable``. Does not commit."""
    attributes = dict(interaction.attributes or {})
    if priority_bump:
        attributes["priority_bump"] = priority_bump
    interaction.attributes = attributes
    extra = [{"skill": skill, "min_level": level} for skill, level in skills]
    if extra:
        interaction.required_skills = merge_skills(list(interaction.required_skills or []), extra)
    # The service's look-ups (customer tier, preferred agent, queue entry) never depend on this call's
    # pending changes, so they need not flush them first: the whole step is written in one flush.
    with session.no_autoflush:
        service.enqueue_contact(session, interaction, queue, actor=actor, now=now)


def merge_skills(current: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Skills the call needs: ``current`` plus ``extra``; for a skill in both, the higher minimum level."""
    by_skill = {item["skill"]: item for item in current}
    for item in extra:
        known = by_skill.get(item["skill"])
        if known is None or known.get("min_level", 1) < item["min_level"]:
            by_skill[item["skill"]] = item
    return list(by_skill.values())


def keep_place_for_callback(session: Session, interaction: Interaction, *, actor: str, number: str,
                            now: datetime | None = None) -> None:
    """The caller leaves the line but not the queue: queued -> callback_pending, same place
    (``routing_age_origin`` is untouched), with the number to ring, and the callback's priority. The
    router offers it like any waiting contact; the agent leg rings the number on accept. No commit."""
    attributes = dict(interaction.attributes or {})
    attributes["callback_number"] = number
    interaction.attributes = attributes
    transition(session, interaction, State.CALLBACK_PENDING, actor=actor, reason="callback_requested",
               data={"number": number, "queue": interaction.queue}, at=now)
    service.refresh_priority(session, interaction)


def abandon(session: Session, interaction: Interaction, *, actor: str, wait_s: int | None, where: str,
            now: datetime | None = None, attributes: dict[str, Any] | None = None) -> None:
    """The caller hung up before being served: a pending offer is rescinded (the agent's console drops
    it), then the interaction moves to ``abandoned`` with where it was and how long it waited, and
    ``attributes`` merged into its own (``transition_now``: written at once when nothing else
    changed). No commit."""
    if interaction.state == State.OFFERED:
        service.rescind_offers_for_abandoned(session, interaction, now=now)
    data: dict[str, Any] = {"where": where}
    if wait_s is not None:
        data["wait_s"] = wait_s
    transition_now(session, interaction, State.ABANDONED, actor=actor, reason="caller_hung_up", data=data, at=now,
                   attributes=attributes)


def position_and_wait(session: Session, interaction_id: int) -> tuple[int | None, int | None]:
    """(place in its queue counting from 1, estimated wait in seconds or None while the router's
    forecasts are not accurate enough to announce) -- ``queues.service.position_and_wait``."""
    return service.position_and_wait(session, interaction_id)


def transfer_to_queue(session: Session, interaction: Interaction, queue: str, *, actor: str, note: str = "",
                      now: datetime | None = None) -> None:
    """A connected call goes back to waiting in ``queue`` keeping its original place; the agent's
    capacity returns. Raises ``queues.service.UnknownQueue`` / ``NotRoutable``. No commit."""
    service.transfer_to_queue(session, interaction, queue, actor=actor, note=note, now=now)


def release_agent(session: Session, interaction: Interaction, *, now: datetime | None = None) -> None:
    """The conversation ended on the phone side (connected -> wrap_up already recorded): the agent's
    wrap-up timer starts and the router may offer them the next contact when it ends. No commit."""
    service.release_agent(session, interaction, now=now)
