"""httpx, loaded at first need, for the few requests the hub makes (``fetchCallFlow``, ``onFinish``,
webhooks, ``play`` of a URL), and the bounds every one of them keeps (:class:`OutboundPolicy`).

Importing httpx costs about 4 MB and 90 ms, and a client's TLS context 3 MB and 27 ms more: a desk
that hosts the hub and never fetches anything need not carry them, and a hub in calls must not
stall its event loop making them. So both happen in a thread, the first time a request is due.

The URLs come from call flows and webhooks, which any admin key may store: without bounds they
would make the hub fetch its own loopback services (the Voice API's admin side, a router's page
on 169.254.x.y) or read an answer of any size into memory. :mod:`intercom.outbound` keeps them.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

MIB = 1024 * 1024


@dataclass(frozen=True)
class OutboundPolicy:
    """Where the hub's own requests may go and how much of an answer it takes.

    LAN addresses (10/8, 172.16/12, 192.168/16, fc00::/7) are always allowed: a flow server or
    Home Assistant lives there. Loopback (127/8, ::1) and link-local (169.254/16, fe80::/10)
    targets, however a name resolves, are refused unless ``allow_loopback``: they are the hub's
    own machine and its network's management addresses.
    """

    allow_loopback: bool = False
    max_redirects: int = 5  # hops followed by hand, each target checked again
    # a call flow is a few kB of JSON; 1 MiB is hundreds of steps
    max_flow_bytes: int = MIB
    # a ``play`` file is decoded whole, at most MAX_MEDIA_SECONDS (600 s): a WAV of 48 kHz 16-bit
    # mono is 57.6 MB, an MP3 of 600 s at 256 kbit/s 19.2 MB. 20 MiB takes any compressed prompt and
    # a WAV of up to 3.6 minutes; a longer message belongs in the media directory.
    max_media_bytes: int = 20 * MIB
    # webhooks' and onFinish's answers are not read at all: only their status counts

    @staticmethod
    def setting(name: str) -> str:
        """How a refusal names the setting that refused: the field and the hub's flag."""
        return f"{name}: intercom hub --{name.replace('_', '-')}"


DEFAULT_OUTBOUND = OutboundPolicy()


class OutboundRefused(Exception):
    """A request the hub will not make, or an answer it will not take: why, naming the setting."""


async def httpx_module() -> ModuleType:
    module = sys.modules.get("httpx")
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, "httpx")
    return module


async def new_client(policy: OutboundPolicy, **options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient(**options)`` that connects only where ``policy`` allows, made off the
    event loop. It follows no redirects: :func:`intercom.outbound.opened` follows them by hand."""
    return await asyncio.to_thread((await outbound_module()).guarded_client, policy, **options)


async def outbound_module() -> ModuleType:
    """:mod:`intercom.outbound`, which imports httpx: loaded off the event loop like it."""
    module = sys.modules.get("intercom.outbound")
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, "intercom.outbound")
    return module
