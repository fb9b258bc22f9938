"""Start-up checks on the IVR graph (pure).

A menu that points nowhere, a node no call can reach, or a cycle of nodes that never waits for the
caller (the call would spin forever) is a configuration error: the desk refuses to start and the
message names the node, e.g. ``ivr.nodes.main_menu.options.3: unknown node 'billing'``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ivr.config import (
    CallbackNode,
    CallerNode,
    ComplaintNode,
    EnqueueNode,
    HoursNode,
    LanguageNode,
    SayNode,
    VoicemailNode,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.config import DeskConfig
    from ivr.config import IvrConfig, Node


def _passes_through(node: Node) -> list[str]:
    """Nodes reached from ``node`` without the caller being asked anything (edges of a silent loop)."""
    if isinstance(node, (SayNode, HoursNode, CallerNode)):
        return [target for _, target in node.targets()]
    if isinstance(node, LanguageNode) and node.use_caller_language:
        return [node.next]  # a caller whose CRM language is known is not asked
    return []


def unknown_references(config: IvrConfig) -> list[str]:
    problems = []
    if config.entry not in config.nodes:
        problems.append(f"ivr.entry: unknown node {config.entry!r}")
    for node_id, node in config.nodes.items():
        for field, target in node.targets():
            if target not in config.nodes:
                problems.append(f"ivr.nodes.{node_id}.{field}: unknown node {target!r}")
    return problems


def unreachable_nodes(config: IvrConfig) -> list[str]:
    seen: set[str] = set()
    pending = [config.entry]
    while pending:
        node_id = pending.pop()
        if node_id in seen or node_id not in config.nodes:
            continue
        seen.add(node_id)
        pending.extend(target for _, target in config.nodes[node_id].targets())
    return [f"ivr.nodes.{node_id}: unreachable from the entry node {config.entry!r}"
            for node_id in config.nodes if node_id not in seen]


def silent_loops(config: IvrConfig) -> list[str]:
    """Cycles made only of nodes that never wait for input, each reported once at its first node."""
    problems: list[str] = []
    done: set[str] = set()
    reported: set[frozenset[str]] = set()

    def visit(node_id: str, path: list[str]) -> None:
        if node_id in path:
            cycle = path[path.index(node_id):]
            if frozenset(cycle) not in reported:
                reported.add(frozenset(cycle))
                shown = " -> ".join(cycle + [node_id])
                problems.append(f"ivr.nodes.{node_id}: loop {shown} never asks the caller for input")
            return
        if node_id in done or node_id not in config.nodes:
            return
        for target in _passes_through(config.nodes[node_id]):
            visit(target, path + [node_id])
        done.add(node_id)

    for node_id in config.nodes:
        visit(node_id, [])
    return problems


def graph_problems(config: IvrConfig) -> list[str]:
    """Every problem with the graph's shape, unknown references first."""
    unknown = unknown_references(config)
    if unknown:  # reachability and loops are meaningless over dangling edges
        return unknown
    return unreachable_nodes(config) + silent_loops(config)


def check_graph(config: IvrConfig) -> None:
    """Raise ValueError listing every graph problem (each naming its node); return when sound."""
    problems = graph_problems(config)
    if problems:
        raise ValueError("; ".join(problems))


def check_ivr_against_desk(config: DeskConfig) -> None:
    """Cross-section check (registered in app.config.CROSS_CHECKS): every queue an IVR node names
    exists in ``routing.queues`` and takes voice, every hours node's calendar exists, and every complaint
    node's categories are ``complaints.categories`` codes."""
    queues = {queue.name: queue for queue in config.routing.queues}
    problems = []
    for node_id, node in config.ivr.nodes.items():
        if isinstance(node, (EnqueueNode, VoicemailNode, CallbackNode)):
            queue = queues.get(node.queue)
            if queue is None:
                problems.append(f"ivr.nodes.{node_id}.queue: unknown queue {node.queue!r} "
                                f"(routing.queues has {', '.join(sorted(queues)) or 'none'})")
            elif "voice" not in queue.channels:
                problems.append(f"ivr.nodes.{node_id}.queue: queue {node.queue!r} does not take voice calls")
        if isinstance(node, HoursNode) and node.calendar not in config.calendars:
            problems.append(f"ivr.nodes.{node_id}.calendar: unknown calendar {node.calendar!r}")
        if isinstance(node, ComplaintNode):
            problems.extend(_unknown_categories(config, node_id, node))
    if problems:
        raise ValueError("; ".join(problems))


def _unknown_categories(config: DeskConfig, node_id: str, node: ComplaintNode) -> list[str]:
    codes = [category.code for category in config.complaints.categories]
    return [f"ivr.nodes.{node_id}.categories.{key}: unknown complaint category {choice.category!r} "
            f"(complaints.categories has {', '.join(codes) or 'none'})"
            for key, choice in node.categories.items() if choice.category not in codes]
