"""httpx, loaded at first need, for the few requests the hub makes (``fetchCallFlow``, ``onFinish``,
webhooks, ``play`` of a URL).

Importing httpx costs about 4 MB and 90 ms, and a client's TLS context 3 MB and 27 ms more: a desk
that hosts the hub and never fetches anything need not carry them, and a hub in calls must not
stall its event loop making them. So both happen in a thread, the first time a request is due.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


async def httpx_module() -> ModuleType:
    module = sys.modules.get("httpx")
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, "httpx")
    return module


async def new_client(**options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient(**options)``, made off the event loop."""
    module = await httpx_module()
    return await asyncio.to_thread(module.AsyncClient, **options)
