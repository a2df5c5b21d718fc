"""API key format. A key is shown once; apimon keeps its SHA-256 and a visible prefix.

Format: ``am_<8 hex prefix>_<43 url-safe chars>``. The prefix part is random too, so the
stored prefix tells keys apart in lists without weakening the secret part.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import NamedTuple

KEY_SCHEME = "am_"


class NewKey(NamedTuple):
    raw: str  # show once, never store
    prefix: str  # e.g. "am_3f9a2c1b"
    key_hash: str  # sha256 hex, the lookup key


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key() -> NewKey:
    prefix = KEY_SCHEME + secrets.token_hex(4)
    raw = f"{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(raw=raw, prefix=prefix, key_hash=hash_key(raw))
