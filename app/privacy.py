"""Privacy requests: export everything held on a customer, and erase their personal data while
keeping anonymised statistics (complaint counts, KPIs) intact.

Both walk the schema itself -- every table that points at the customer, and the tables that point at
those -- so a domain added later is covered without code here. What counts as personal is declared
per column in ``CLASSIFICATION``; tests/trust/test_privacy.py fails while any text, JSON or binary
column reachable from a customer is unclassified, so nothing personal can slip past erasure.
"""
from __future__ import annotations

import base64
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, LargeBinary, String, Table, Text, delete, select, update
from sqlalchemy.orm import Session

from app.audit.service import record
from app.db import Base

ERASED = "[erased]"
# Tables reachable from a customer that belong to staff or configuration, never exported or erased.
NOT_CUSTOMER_DATA = {"staff_users", "agent_skills", "staff_recovery_codes", "audit_entries"}
# table -> {column: "personal" | "keep"}. "personal" text becomes "[erased]" (or NULL when nullable),
# JSON becomes {} (or [] when the column holds a list), binary becomes NULL or b"". "keep": not personal
# (codes, states, amounts). Tables in DELETE_ROWS are identifiers only (phones, emails, sign-in
# accounts): their rows are removed outright, as nothing statistical lives in them.
CLASSIFICATION: dict[str, dict[str, str]] = {}
DELETE_ROWS: set[str] = set()
LIST_COLUMNS: set[str] = set()  # "table.column" JSON columns that hold lists


HELD_PARENTS: list[tuple[str, str]] = []  # (table, foreign key column): the rows it points to are held too


def hold_parent(table: str, column: str) -> None:
    """Declare that the row a held ``table`` row points to through ``column`` is the customer's too --
    a parent the walk from the customer (which follows links from parents to children) would not reach,
    e.g. the raw message an email of theirs was parsed from."""
    if (table, column) not in HELD_PARENTS:
        HELD_PARENTS.append((table, column))


def _parent_table(table: str, column: str):
    """The table ``table.column`` points to (its one foreign key)."""
    (fk,) = Base.metadata.tables[table].c[column].foreign_keys
    return fk.column.table


def classify(table: str, *, personal: tuple[str, ...] = (), keep: tuple[str, ...] = (),
             lists: tuple[str, ...] = (), delete_rows: bool = False) -> None:
    """Declare a table's columns (the test checks every customer-data table is declared)."""
    entry = CLASSIFICATION.setdefault(table, {})
    entry.update(dict.fromkeys(personal, "personal"))
    entry.update(dict.fromkeys(keep, "keep"))
    LIST_COLUMNS.update(f"{table}.{c}" for c in lists)
    if delete_rows:
        DELETE_ROWS.add(table)


def reachable_tables() -> list[tuple[Table, list[tuple[str, Table, str]]]]:
    """Every table holding customer data, with the FK paths that lead to it: (table, [(column,
    parent table, parent column)]). Breadth-first from ``customers`` through foreign keys."""
    tables = Base.metadata.tables
    found: dict[str, list[tuple[str, Table, str]]] = {"customers": []}
    frontier = ["customers"]
    while frontier:
        parent_name = frontier.pop(0)
        for table in tables.values():
            if table.name in NOT_CUSTOMER_DATA:
                continue
            for fk in table.foreign_keys:
                if fk.column.table.name == parent_name and fk.parent.table is table:
                    links = found.setdefault(table.name, [])
                    if (fk.parent.name, fk.column.table, fk.column.name) not in links:
                        links.append((fk.parent.name, fk.column.table, fk.column.name))
                        if table.name not in frontier and table.name != parent_name:
                            frontier.append(table.name)
    return [(tables[name], links) for name, links in found.items()]


def unclassified_columns() -> list[str]:
    """Text/JSON/binary columns of customer-data tables with no declared classification."""
    missing = []
    held_parents = [_parent_table(table, column) for table, column in HELD_PARENTS]
    for table in [t for t, _links in reachable_tables()] + held_parents:
        if table.name in DELETE_ROWS:
            continue
        declared = CLASSIFICATION.get(table.name, {})
        for column in table.columns:
            if isinstance(column.type, (String, Text, JSON, LargeBinary)) and column.name not in declared:
                missing.append(f"{table.name}.{column.name}")
    return missing


def _row_ids(session: Session, customer_id: int) -> dict[str, set[Any]]:
    """Primary keys of every row that belongs to the customer, table by table."""
    ids: dict[str, set[Any]] = {"customers": {customer_id}}
    changed = True
    tables = reachable_tables()
    while changed:  # follow links until no new rows appear (handles any depth)
        changed = False
        for table, links in tables:
            if table.name == "customers":
                continue
            pk = list(table.primary_key.columns)[0]
            for column, parent, parent_column in links:
                parent_ids = ids.get(parent.name)
                if not parent_ids or parent_column != list(parent.primary_key.columns)[0].name:
                    continue
                rows = set(session.scalars(select(pk).where(table.c[column].in_(parent_ids))))
                known = ids.setdefault(table.name, set())
                if rows - known:
                    known |= rows
                    changed = True
    for child_name, column in HELD_PARENTS:
        child_ids = ids.get(child_name)
        if not child_ids:
            continue
        child = Base.metadata.tables[child_name]
        parents = set(session.scalars(select(child.c[column]).where(
            list(child.primary_key.columns)[0].in_(child_ids), child.c[column].is_not(None))))
        if parents:
            ids.setdefault(_parent_table(child_name, column).name, set()).update(parents)
    return ids


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Decimal):
        return str(value)
    return value


def export_customer(session: Session, customer_id: int, *, actor: str) -> dict[str, list[dict[str, Any]]]:
    """All rows held on the customer, table by table, as JSON-ready dicts. Audited."""
    result: dict[str, list[dict[str, Any]]] = {}
    for table_name, row_ids in sorted(_row_ids(session, customer_id).items()):
        table = Base.metadata.tables[table_name]
        pk = list(table.primary_key.columns)[0]
        rows = session.execute(select(table).where(pk.in_(row_ids)).order_by(pk)).mappings()
        result[table_name] = [{k: _plain(v) for k, v in row.items()} for row in rows]
    record(session, actor=actor, action="privacy.exported", target_type="customer", target_id=customer_id,
           data={"tables": {name: len(rows) for name, rows in result.items()}})
    return result


def _scrubbed(column) -> Any:
    if isinstance(column.type, JSON):
        return [] if f"{column.table.name}.{column.name}" in LIST_COLUMNS else {}
    if isinstance(column.type, LargeBinary):
        return None if column.nullable else b""
    return None if column.nullable else ERASED


def erase_customer(session: Session, customer_id: int, *, actor: str, reason: str) -> dict[str, int]:
    """Replace every personal column of every row held on the customer; keep the rows, their states,
    times and amounts, so counts and KPIs stay right. Raises ValueError when a reachable column is not
    classified (refusing to half-erase). Audited (the audit entry names no personal data)."""
    if not reason.strip():
        raise ValueError("reason: required")
    missing = unclassified_columns()
    if missing:
        raise ValueError(f"columns not classified for erasure: {', '.join(missing)}")
    counts: dict[str, int] = {}
    held = _row_ids(session, customer_id)
    for table_name in [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in DELETE_ROWS]:
        if held.get(table_name):
            table = Base.metadata.tables[table_name]
            pk = list(table.primary_key.columns)[0]
            session.execute(delete(table).where(pk.in_(held[table_name])))
            counts[table_name] = len(held.pop(table_name))
    for table_name, row_ids in held.items():
        table = Base.metadata.tables[table_name]
        personal = [c for c in table.columns if CLASSIFICATION.get(table_name, {}).get(c.name) == "personal"]
        if not personal or not row_ids:
            continue
        pk = list(table.primary_key.columns)[0]
        values = {c.name: _scrubbed(c) for c in personal}
        session.execute(update(table).where(pk.in_(row_ids)).values(**values))
        counts[table_name] = len(row_ids)
    record(session, actor=actor, action="privacy.erased", target_type="customer", target_id=customer_id,
           data={"reason": reason.strip()[:500], "rows": counts})
    return counts


from app import privacy_rules  # noqa: E402,F401  (the declarations; imported last, they call classify)
