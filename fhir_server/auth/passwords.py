"""Password and client-secret hashing: argon2id with the library's default parameters.

Argon2 costs a few hundred milliseconds of CPU on purpose. A user pays it once per login; a client
authenticating with its secret would pay it at every token, introspection or revocation request, so a
client secret that matched is remembered (as a SHA-256 of it, in this process only) for five minutes.
"""

from __future__ import annotations

import hashlib
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
_DUMMY: str | None = None
_REMEMBER_S = 300.0
_REMEMBER_MAX = 1000
_verified: dict[tuple[str, str], float] = {}
_lock = threading.Lock()


def hash_secret(secret: str) -> str:
    """The argon2id hash (with its salt and parameters) to store."""
    return _HASHER.hash(secret)


def _dummy() -> str:
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = _HASHER.hash("not the password of anyone")
    return _DUMMY


def verify_secret(stored: str | None, given: str) -> bool:
    """Whether ``given`` matches ``stored``; slow on purpose, call it off the event loop. Without a
    stored hash the same work is done against a dummy, so timing does not tell an account exists."""
    try:
        return _HASHER.verify(stored or _dummy(), given) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def verify_client_secret(stored: str | None, given: str) -> bool:
    """``verify_secret`` for client secrets, remembering recent successes."""
    if stored is None:
        return verify_secret(None, given)
    key = (stored, hashlib.sha256(given.encode()).hexdigest())
    now = time.monotonic()
    with _lock:
        until = _verified.get(key)
    if until is not None and until > now:
        return True
    if not verify_secret(stored, given):
        return False
    with _lock:
        if len(_verified) >= _REMEMBER_MAX:
            _verified.clear()
        _verified[key] = now + _REMEMBER_S
    return True
