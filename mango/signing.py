"""The VPBX signature: lowercase hex SHA-256 of ``api_key + json + salt``.

Both directions use it: the PBX signs what it posts to us, we sign our commands.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign", "verify"]


def sign(api_key: str, payload: str, salt: str) -> str:
    return hashlib.sha256(f"{api_key}{payload}{salt}".encode()).hexdigest()


def verify(api_key: str, payload: str, salt: str, given: str) -> bool:
    """Compare in constant time, so the answer time tells nothing about the sign."""
    return hmac.compare_digest(sign(api_key, payload, salt).encode(), given.lower().encode())
