"""The seed SDK's event API (``on``, ``off``, ``remove_event_listener``) on pyee's asyncio emitter."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from pyee.asyncio import AsyncIOEventEmitter

log = logging.getLogger(__name__)


class EventTarget:
    """Handlers may be plain functions or coroutine functions; coroutines run as tasks.

    pyee turns an exception in a handler into an ``error`` event, which here would look like
    an SDK error; each handler is wrapped so that its failure is logged instead.
    """

    def __init__(self) -> None:
        self._emitter = AsyncIOEventEmitter()
        self._wrappers: dict[tuple[str, Callable[..., Any]], Callable[..., Any]] = {}

    def on(self, event: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        wrapper = _guarded(event, handler)
        self._wrappers[(event, handler)] = wrapper
        self._emitter.on(event, wrapper)
        return handler

    def remove_event_listener(self, event: str, handler: Callable[..., Any]) -> None:
        wrapper = self._wrappers.pop((event, handler), None)
        if wrapper is not None:
            self._emitter.remove_listener(event, wrapper)

    off = remove_event_listener

    def _emit(self, event: str, *args: Any) -> None:
        # pyee raises an 'error' nobody listens to; the SDK reports errors in other ways too.
        if event == "error" and not self._emitter.listeners("error"):
            return
        self._emitter.emit(event, *args)


def _guarded(event: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def guarded_async(*args: Any) -> None:
            try:
                await handler(*args)
            except Exception:
                log.exception("%r handler %r failed", event, handler)

        return guarded_async

    @functools.wraps(handler)
    def guarded(*args: Any) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("%r handler %r failed", event, handler)

    return guarded
