"""Customer accounts: sign-up, password sign-in, one-time email links (sign-in, verify, reset).

Security promises:
- tokens are 256-bit random, stored only as SHA-256 hashes, expire, and work once;
- nothing here reveals whether an email has an account (callers show the same answer either way);
- a new account stays inactive until its owner follows the verification link, so signing up with
  somebody else's address never opens that person's cases.
Services take a Session and plain values, never commit (views own the transaction).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask_babel import force_locale, gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.passwords import WeakPassword, hash_password, needs_rehash, verify_password
from app.crm.models import Customer, CustomerEmail
from app.db import utcnow
from app.portal.config import PortalConfig
from app.portal.mail import record_email
from app.portal.models import AccountToken, CustomerAccount

__all__ = ["sign_up", "authenticate", "request_login_link", "request_password_reset", "consume_token",
           "reset_password", "TokenInvalid", "WeakPassword", "find_account"]
PURPOSES = ("login", "verify", "reset")


class TokenInvalid(Exception):
    """The link is unknown, used already, expired, or meant for something else."""


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def find_account(session: Session, email: str) -> CustomerAccount | None:
    return session.scalar(select(CustomerAccount).where(func.lower(CustomerAccount.email) == email.strip().lower()))


def issue_token(session: Session, account: CustomerAccount, purpose: str, ttl_s: int,
                now: datetime | None = None) -> str:
    """A new one-time token for ``account`` (its hash is stored); returns the raw token for the link."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    now = now or utcnow()
    raw = secrets.token_urlsafe(32)
    session.add(AccountToken(account_id=account.id, purpose=purpose, token_hash=_hash(raw), created_at=now,
                             expires_at=now + timedelta(seconds=ttl_s)))
    session.flush()
    return raw


def consume_token(session: Session, raw: str, purpose: str, now: datetime | None = None) -> CustomerAccount:
    """Use a token once: returns its account, marks it used. ``verify`` also activates the account.
    Raises TokenInvalid (unknown, used, expired, wrong purpose, or a disabled account's sign-in link)."""
    now = now or utcnow()
    token = session.scalar(select(AccountToken).where(AccountToken.token_hash == _hash(raw or ""))
                           .with_for_update())
    if token is None or token.purpose != purpose or token.used_at is not None or token.expires_at <= now:
        raise TokenInvalid(purpose)
    account = session.get(CustomerAccount, token.account_id)
    if purpose == "verify":
        account.active = True
    elif not account.active:
        raise TokenInvalid(purpose)
    token.used_at = now
    return account


def _link(base_url: str, path: str, raw: str) -> str:
    return f"{base_url.rstrip('/')}{path}{raw}"


def sign_up(session: Session, *, name: str, email: str, password: str, language: str, config: PortalConfig,
            base_url: str) -> CustomerAccount | None:
    """Create an inactive account and email its verification link. The account joins the CRM customer
    who owns the address when exactly one does, else a new customer record. An address that already has
    an account gets a "you already have an account" email instead (the caller cannot tell which).
    Raises WeakPassword. Returns the new account, or None when the address was taken."""
    address = email.strip().lower()
    language = language if language in ("en", "zh") else "en"
    existing = find_account(session, address)
    if existing is not None:
        with force_locale(existing.language):
            record_email(session, to=address, subject=_("You already have an account"), kind="signup_exists",
                         customer_id=existing.customer_id,
                         body=_("Someone (perhaps you) tried to sign up with this address. You already have an "
                                "account: sign in or reset your password at %(url)s",
                                url=f"{base_url.rstrip('/')}/portal/signin"))
        return None
    password_hash = hash_password(password)
    owners = set(session.scalars(select(CustomerEmail.customer_id).where(CustomerEmail.email == address)))
    taken = set(session.scalars(select(CustomerAccount.customer_id).where(CustomerAccount.customer_id.in_(owners))))
    owners -= taken
    if len(owners) == 1:
        customer = session.get(Customer, owners.pop())
    else:
        customer = Customer(name=name.strip()[:200] or address, language=language, tier="small", is_prospect=True,
                            attributes={})
        customer.emails = [CustomerEmail(email=address)]
        session.add(customer)
        session.flush()
    account = CustomerAccount(customer_id=customer.id, email=address, password_hash=password_hash, active=False)
    session.add(account)
    session.flush()
    raw = issue_token(session, account, "verify", config.reset_link_ttl_s)
    with force_locale(customer.language):
        record_email(session, to=address, subject=_("Confirm your email address"), kind="verify",
                     customer_id=customer.id,
                     body=_("Welcome! Confirm your address and sign in with this link (valid for %(minutes)d "
                            "minutes, once): %(url)s", minutes=config.reset_link_ttl_s // 60,
                            url=_link(base_url, "/portal/signin/verify/", raw)))
    return account


def authenticate(session: Session, email: str, password: str) -> CustomerAccount | None:
    """The active account with these credentials, or None. Upgrades old password hashes in place."""
    account = find_account(session, email)
    if account is None or not account.active or not verify_password(account.password_hash, password):
        return None
    if needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return account


def request_login_link(session: Session, email: str, *, config: PortalConfig, base_url: str) -> bool:
    """Email a one-time sign-in link when an active account has this address. Returns whether one was
    sent -- for tests and logs only; views must answer the same either way."""
    account = find_account(session, email)
    if account is None or not account.active:
        return False
    raw = issue_token(session, account, "login", config.login_link_ttl_s)
    with force_locale(account.language):
        record_email(session, to=account.email, subject=_("Your sign-in link"), kind="login_link",
                     customer_id=account.customer_id,
                     body=_("Sign in with this link. It works once and expires in %(minutes)d minutes: %(url)s",
                            minutes=config.login_link_ttl_s // 60,
                            url=_link(base_url, "/portal/signin/link/", raw)))
    return True


def request_password_reset(session: Session, email: str, *, config: PortalConfig, base_url: str) -> bool:
    """Email a one-time password-reset link when an active account has this address (see
    request_login_link)."""
    account = find_account(session, email)
    if account is None or not account.active:
        return False
    raw = issue_token(session, account, "reset", config.reset_link_ttl_s)
    with force_locale(account.language):
        record_email(session, to=account.email, subject=_("Reset your password"), kind="reset",
                     customer_id=account.customer_id,
                     body=_("Choose a new password with this link. It works once and expires in %(minutes)d "
                            "minutes: %(url)s", minutes=config.reset_link_ttl_s // 60,
                            url=_link(base_url, "/portal/reset/", raw)))
    return True


def reset_password(session: Session, raw: str, new_password: str, now: datetime | None = None) -> CustomerAccount:
    """Set a new password with a reset token (active accounts only).
    Raises TokenInvalid, WeakPassword (the token stays unused on a weak password)."""
    new_hash = hash_password(new_password)
    account = consume_token(session, raw, "reset", now)
    account.password_hash = new_hash
    # Other outstanding links die with the old password.
    for token in session.scalars(select(AccountToken).where(AccountToken.account_id == account.id,
                                                            AccountToken.used_at.is_(None))):
        token.used_at = now or utcnow()
    return account
