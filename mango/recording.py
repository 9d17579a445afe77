"""Links to a call's recording, as the VPBX API signs them.

``<api url>queries/recording/link/<recording_id>/<play|download>/<key>/<expires>/<sign>``
with ``sign`` the SHA-256 of key + expires + recording id + salt, and
``expires`` the Unix time until which the link works. The PBX serves such
links only when the account has them enabled in its MANGO OFFICE settings.
"""

from __future__ import annotations

import hashlib
from typing import Literal
from urllib.parse import quote

__all__ = ["recording_link"]


def recording_link(api_url: str, api_key: str, salt: str, recording_id: str, *,
                   expires: int, action: Literal["play", "download"] = "play") -> str:
    sign = hashlib.sha256(f"{api_key}{expires}{recording_id}{salt}".encode()).hexdigest()
    base = api_url if api_url.endswith("/") else api_url + "/"
    return (f"{base}queries/recording/link/{quote(recording_id, safe='=')}/{action}/"
            f"{quote(api_key, safe='')}/{expires}/{sign}")
