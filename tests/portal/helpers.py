"""Shared test helpers for the portal and chat tests."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.auth.passwords import hash_password
from app.portal.models import CustomerAccount, PortalEmail
from tests.factories import PASSWORD, make_customer

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"0" * 64


def make_account(session, *, email: str | None = None, name: str | None = None, language: str = "en",
                 active: bool = True, password: str = PASSWORD) -> CustomerAccount:
    customer = make_customer(session, name=name, email=email, language=language)
    address = email or f"customer{customer.id}@example.com"
    if email is None:
        from app.crm.models import CustomerEmail

        customer.emails = [CustomerEmail(email=address)]
    account = CustomerAccount(customer_id=customer.id, email=address.lower(), password_hash=hash_password(password),
                              active=active)
    session.add(account)
    session.flush()
    return account


def portal_login(client, account: CustomerAccount, password: str = PASSWORD):
    response = client.post("/portal/signin", data={"email": account.email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:400]
    return response


def emails_to(session, address: str, kind: str | None = None) -> list[PortalEmail]:
    query = select(PortalEmail).where(PortalEmail.to_address == address.lower()).order_by(PortalEmail.id)
    if kind:
        query = query.where(PortalEmail.kind == kind)
    return list(session.scalars(query))


def link_token(body: str, path: str) -> str:
    match = re.search(re.escape(path) + r"([A-Za-z0-9_\-]+)", body)
    assert match, body
    return match.group(1)
