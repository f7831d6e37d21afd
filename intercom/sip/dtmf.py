"""DTMF over SIP INFO (``application/dtmf-relay``), as the browser client sends and reads it.

One INFO carries one key: ``Signal=5`` and ``Duration=100`` on lines of their own. Both the SDK
and the hub (its call flows send and listen for keys) speak it, so its form lives here once.
"""

from __future__ import annotations

import re

DTMF_CONTENT_TYPE = "application/dtmf-relay"
DTMF_DIGITS = re.compile(r"[0-9*#]+\Z")
DTMF_KEYS = re.compile(r"[0-9A-D*#]\Z")  # what may arrive: RFC 4733's sixteen events


def dtmf_body(key: str, duration_ms: int) -> bytes:
    return f"Signal={key}\r\nDuration={duration_ms}".encode()


def dtmf_signals(body: bytes) -> list[str]:
    """The keys in an INFO body; lines that are not a valid ``Signal=`` are ignored."""
    keys = []
    for line in body.decode("utf-8", errors="replace").splitlines():
        name, _, value = line.partition("=")
        value = value.strip().upper()
        if name.strip().lower() == "signal" and DTMF_KEYS.match(value):
            keys.append(value)
    return keys
