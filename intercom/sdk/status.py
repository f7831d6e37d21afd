"""Client statuses, with the seed SDK's values."""

from __future__ import annotations

import enum


class ClientStatus(enum.StrEnum):
    OFFLINE = "offline"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ERROR = "error"
