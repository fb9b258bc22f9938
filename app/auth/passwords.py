"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106's recommendations)."""
from __future__ import annotations

import os

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

# DESK_ARGON2_PROFILE=cheapest is for test suites only (thousands of hashes); production keeps RFC 9106's.
_hasher = (PasswordHasher.from_parameters(profiles.CHEAPEST)
           if os.environ.get("DESK_ARGON2_PROFILE") == "cheapest" else PasswordHasher())
MIN_LENGTH = 10


class WeakPassword(ValueError):
    """The password is too short to be accepted."""


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"passwords need at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing or corrupt hash is simply a mismatch."""
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
